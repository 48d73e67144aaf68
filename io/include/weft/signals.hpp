// Unix signals on the event loop (docs/api.md, io), and the SIGINT
// handling of weft::run() (RUN-06).
//
// weft::add_signal_handler(loop, sig, cb) / remove_signal_handler(loop, sig)
// are asyncio's loop.add_signal_handler(sig, cb) / loop.remove_signal_handler(sig),
// with the loop first (a deviation, docs/api.md: EventLoop belongs to
// weft::executor, which knows nothing of signals). Their contract:
//
// - `cb` runs on the loop that registered it, as a callback of that loop
//   (never in signal context), once per delivery; deliveries of one signal
//   that arrive before the loop reads them coalesce, as Unix signals do.
// - One handler per signal per process: registering a signal again on the
//   same loop replaces the callback; registering it on another loop moves it
//   there (as asyncio's last signal.signal() wins). remove_signal_handler
//   returns false when this loop does not hold the signal.
// - Callable from any thread. From the loop's own thread (or before a
//   standalone loop runs, from the thread that will run it) registration is
//   immediate; from any other thread it is queued to the loop (call_soon)
//   and takes effect when the loop gets to it.
// - @throws ValueError for a number outside 1.._NSIG-1 or one reserved by the
//   C library (32, 33); RuntimeError for SIGKILL / SIGSTOP (cannot be
//   caught) or a closed loop; std::system_error if signalfd/sigaction fail.
// - Synchronous fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL) raised by the
//   process itself cannot be handled this way: the kernel forces them.
//
// How a signal reaches the loop (see io/src/signals.cpp for the protocol):
// the loop's thread blocks the signal and reads it from a signalfd watched by
// its selector. Other threads of the process (the main thread, blocking-pool
// threads, threads weft does not own) are not touched: instead a forwarding
// sigaction is installed, and a delivery that lands on such a thread is
// re-sent (tgkill) to the loop's thread, where it waits for the signalfd.
// So no delivery is lost or handled with the wrong disposition, and no
// thread's signal mask is changed behind its back. When the last handler for
// a signal goes, the loop thread unblocks it and the previous disposition is
// restored (unless someone replaced the forwarder meanwhile).
//
// Child processes (create_subprocess_exec) start with an empty signal mask
// and default dispositions for the signals weft handles.
//
// weft::run() and SIGINT (RUN-06): with RunOptions::handle_sigint (the
// default), when run() is called on the process's main thread and SIGINT has
// its default disposition and no weft handler, run() installs a SIGINT handler on worker 0's loop
// for its duration. SIGINT is blocked on run()'s thread and on every thread the runtime starts
// (they inherit the mask), so it is read only through that loop's signalfd; the block is lifted
// when run() returns. The first SIGINT cancels the main task (and so the future it awaits). If main
// then lets the CancelledError out, run() throws KeyboardInterrupt; if main had also been cancelled
// for another reason, the CancelledError surfaces instead. A second SIGINT, or one after main
// finished, ends the process with SIGINT's default action (asyncio raises KeyboardInterrupt at once
// there).
#pragma once

#include <weft/errors.hpp>
#include <weft/event_loop.hpp>

namespace weft {

/// Runs `cb` on `loop` whenever signal `sig` arrives (see the contract above).
void add_signal_handler(EventLoop& loop, int sig, Callback cb);
/// Removes `loop`'s handler for `sig`; false when `loop` does not hold it.
bool remove_signal_handler(EventLoop& loop, int sig);

/// Thrown by weft::run() when SIGINT cancelled the main task and the main
/// task let the CancelledError out (Python's KeyboardInterrupt).
class KeyboardInterrupt : public Error {
 public:
  KeyboardInterrupt() : Error("KeyboardInterrupt") {}
  using Error::Error;
};

}  // namespace weft

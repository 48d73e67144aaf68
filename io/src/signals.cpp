// Signals: weft::add_signal_handler / remove_signal_handler over a
// signalfd per loop (reactor/: SignalFd), and run()'s SIGINT handling (RUN-06). Issue 3.
//
// Protocol (the contract is in <weft/signals.hpp>):
//
// - A process has one handler per signal: Registry::slots[sig] names the
//   LoopSignals that owns it and the callback. A LoopSignals belongs to one
//   loop: its signalfd (registered with that loop's selector through
//   add_reader) and the set of signals its thread blocks. Its owner thread
//   (`tid`) is the loop's thread.
// - Registration, removal and reading run on the loop's own thread (public
//   calls from other threads are queued to the loop). The owner thread first
//   blocks the signal, then publishes itself as the target, and only then
//   installs the forwarder: a signal is never sent to a thread that does not
//   block it yet, and the forwarder never runs without a target to send to.
// - Other threads keep their masks. A forwarding sigaction handles a delivery
//   that lands on one of them by re-sending it with tgkill to the target
//   thread, where it stays pending until the signalfd is read. signalfd
//   reports the reading thread's own pending signals plus the process's, and
//   the selector is waited on and read by that same thread, so both paths
//   end up in the same read. Each delivery is consumed exactly once: by the
//   signalfd read, or by one forwarder that re-sends it once.
// - When the owner changes or the handler is removed, the old owner drops the
//   signal from its signalfd, consumes what is still pending for it
//   (sigtimedwait with a zero timeout: forwarded to the new owner, or dropped
//   as asyncio drops a signal whose handler went away), then unblocks it.
// - The registry mutex guards slots, the loop map and the saved dispositions.
//   It is never held while calling add_reader/remove_reader (removing the
//   reader may destroy a LoopSignals, whose destructor takes the mutex) nor
//   while running a user callback.
// - The forwarder runs in signal context and reads only ForwardTable's
//   lock-free atomics.
#include <weft/detail/loop_reactor.hpp>
#include <weft/detail/run_interrupt.hpp>
#include <weft/event_loop.hpp>
#include <weft/reactor/signal_fd.hpp>
#include <weft/runtime.hpp>
#include <weft/signals.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>

namespace weft {
namespace detail {
namespace {

constexpr int kSignals = _NSIG;

pid_t this_tid() noexcept { return static_cast<pid_t>(::syscall(SYS_gettid)); }

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

// What the forwarder needs, readable in signal context.
struct ForwardTable {
  // ordering: release by the owner thread after it blocked the signal; acquire
  // in the forwarder, so a re-sent signal finds it blocked there.
  std::atomic<pid_t> target[kSignals];
  // The disposition the forwarder replaced (applied when there is no target).
  std::atomic<std::uintptr_t> previous[kSignals];
  std::atomic<int> previous_flags[kSignals];
};
ForwardTable g_forward;  // constant-initialised to zero: valid before main

bool ignored_by_default(int sig) noexcept {
  return sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH;
}

// Signal context: only async-signal-safe calls.
void apply_previous(int sig, siginfo_t* info, void* ucontext) noexcept {
  std::uintptr_t handler = g_forward.previous[sig].load(std::memory_order_acquire);
  int flags = g_forward.previous_flags[sig].load(std::memory_order_relaxed);
  if (handler == reinterpret_cast<std::uintptr_t>(SIG_IGN)) return;
  if (handler == reinterpret_cast<std::uintptr_t>(SIG_DFL)) {
    if (ignored_by_default(sig)) return;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
    ::kill(::getpid(), sig);  // taken by a thread that does not block it: the default action
    return;
  }
  if (flags & SA_SIGINFO)
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(handler)(sig, info, ucontext);
  else
    reinterpret_cast<void (*)(int)>(handler)(sig);
}

void forward_signal(int sig, siginfo_t* info, void* ucontext) {
  int saved_errno = errno;
  pid_t tid = g_forward.target[sig].load(std::memory_order_acquire);
  if (tid == 0 || ::syscall(SYS_tgkill, ::getpid(), tid, sig) != 0)
    apply_previous(sig, info, ucontext);
  errno = saved_errno;
}

bool forwarder_installed(const struct sigaction& act) noexcept {
  return (act.sa_flags & SA_SIGINFO) && act.sa_sigaction == &forward_signal;
}

class LoopSignals;

struct Slot {
  LoopSignals* owner = nullptr;
  Callback callback;
  std::uint64_t token = 0;
  bool installed = false;        // the forwarder is (or was, by us) the disposition
  struct sigaction previous {};  // the disposition it replaced
};

struct Registry {
  std::mutex mu;
  Slot slots[kSignals];                                // guarded by mu
  std::unordered_map<EventLoop*, LoopSignals*> loops;  // guarded by mu
  std::uint64_t next_token = 1;                        // guarded by mu
};

// Leaked on purpose: signals may arrive while static objects are destroyed.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

void install_forwarder_locked(int sig, Slot& slot) {
  struct sigaction previous {};
  if (::sigaction(sig, nullptr, &previous) != 0) throw_errno(errno, "sigaction");
  g_forward.previous[sig].store((previous.sa_flags & SA_SIGINFO)
                                    ? reinterpret_cast<std::uintptr_t>(previous.sa_sigaction)
                                    : reinterpret_cast<std::uintptr_t>(previous.sa_handler),
                                std::memory_order_release);
  g_forward.previous_flags[sig].store(previous.sa_flags, std::memory_order_relaxed);
  struct sigaction act {};
  act.sa_sigaction = &forward_signal;
  act.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&act.sa_mask);
  if (::sigaction(sig, &act, nullptr) != 0) throw_errno(errno, "sigaction");
  slot.previous = previous;
  slot.installed = true;
}

// The last handler for `sig` is gone: put back what the forwarder replaced,
// unless someone replaced the forwarder in the meantime (then theirs stays).
void release_slot_locked(int sig, Slot& slot) {
  slot.owner = nullptr;
  slot.token = 0;
  g_forward.target[sig].store(0, std::memory_order_release);
  if (!slot.installed) return;
  struct sigaction current {};
  if (::sigaction(sig, nullptr, &current) == 0 && forwarder_installed(current))
    ::sigaction(sig, &slot.previous, nullptr);
  slot.installed = false;
}

class LoopSignals {
 public:
  explicit LoopSignals(EventLoop& loop) : loop_(&loop), tid_(this_tid()) {}
  LoopSignals(const LoopSignals&) = delete;
  LoopSignals& operator=(const LoopSignals&) = delete;

  // Runs when the reader callback goes: removed by us, or the loop destroyed
  // with handlers still registered (then possibly on another thread).
  ~LoopSignals() {
    Callback dead[kSignals];  // destroyed after the lock is released
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    for (int sig = 1; sig < kSignals; ++sig) {
      Slot& slot = r.slots[sig];
      if (slot.owner != this) continue;
      dead[sig] = std::move(slot.callback);
      release_slot_locked(sig, slot);
    }
    auto it = r.loops.find(loop_);
    if (it != r.loops.end() && it->second == this) r.loops.erase(it);
  }

  EventLoop* loop() const noexcept { return loop_; }
  pid_t tid() const noexcept { return tid_; }
  int fd() const noexcept { return signals_.fd(); }
  bool empty() const noexcept { return signals_.empty(); }

  // Owner thread. Blocks `sig` here and adds it to the signalfd.
  void watch(int sig) { signals_.watch(sig); }

  // Owner thread. Stops reading `sig`; what is still pending for it goes to
  // the signal's current owner (forward) or is dropped.
  void unwatch(int sig, bool forward) {
    int pending = signals_.unwatch(sig);
    if (forward)
      for (; pending > 0; --pending) route(sig);
  }

  // Owner thread: the selector found the signalfd readable.
  void on_readable() {
    constexpr std::size_t kBatch = 16;
    int sigs[kBatch];
    for (;;) {
      std::size_t n = signals_.read(sigs, kBatch);
      for (std::size_t i = 0; i < n; ++i) dispatch(sigs[i]);
      if (n < kBatch) return;
    }
  }

 private:
  // A signal read here that another loop now owns goes there.
  static void route(int sig) {
    Registry& r = registry();
    pid_t to = 0;
    {
      std::lock_guard lock(r.mu);
      if (LoopSignals* owner = r.slots[sig].owner) to = owner->tid_;
    }
    if (to != 0) ::syscall(SYS_tgkill, ::getpid(), to, sig);
  }

  void dispatch(int sig) {
    Registry& r = registry();
    Callback callback;
    pid_t to = 0;
    {
      std::lock_guard lock(r.mu);
      const Slot& slot = r.slots[sig];
      if (slot.owner == this)
        callback = slot.callback;
      else if (slot.owner)
        to = slot.owner->tid_;
    }
    if (callback) {
      try {
        callback();
      } catch (...) {
        loop_->call_exception_handler(
            {"Exception in signal handler for signal " + std::to_string(sig),
             std::current_exception(), std::nullopt, std::nullopt});
      }
    } else if (to != 0) {
      ::syscall(SYS_tgkill, ::getpid(), to, sig);
    }
  }

  EventLoop* const loop_;
  const pid_t tid_;
  SignalFd signals_;  // owner thread (signal_fd.hpp)
};

void check_signal(const char* what, int sig) {
  if (sig < 1 || sig >= kSignals)
    throw ValueError(std::string(what) + ": invalid signal number " + std::to_string(sig));
  if (sig == SIGKILL || sig == SIGSTOP)
    throw RuntimeError(std::string(what) + ": sig " + std::to_string(sig) + " cannot be caught");
  if (sig > 31 && sig < SIGRTMIN)
    throw ValueError(std::string(what) + ": signal " + std::to_string(sig) +
                     " is reserved by the C library");
}

// Owner thread: drops `sig` from `loop` if the loop no longer owns it (the
// signal moved to another loop), and the loop's signalfd when nothing is left.
void drop_unowned(EventLoop& loop, int sig) {
  Registry& r = registry();
  LoopSignals* state = nullptr;
  {
    std::lock_guard lock(r.mu);
    auto it = r.loops.find(&loop);
    if (it == r.loops.end() || r.slots[sig].owner == it->second) return;
    state = it->second;
  }
  state->unwatch(sig, true);
  if (state->empty()) {
    {
      std::lock_guard lock(r.mu);
      r.loops.erase(&loop);
    }
    loop.remove_reader(state->fd());  // destroys `state` once the reader callback goes
  }
}

// Owner thread. Returns the registration's token.
std::uint64_t add_on_owner(EventLoop& loop, int sig, Callback callback) {
  Registry& r = registry();
  std::shared_ptr<LoopSignals> fresh;  // declared first: outlives the lock below
  LoopSignals* state = nullptr;
  {
    std::lock_guard lock(r.mu);
    if (auto it = r.loops.find(&loop); it != r.loops.end()) state = it->second;
  }
  if (!state) {
    fresh = std::make_shared<LoopSignals>(loop);
    loop.add_reader(fresh->fd(), [keep = fresh] { keep->on_readable(); });
    state = fresh.get();
    std::lock_guard lock(r.mu);
    r.loops[&loop] = state;
  }
  try {
    state->watch(sig);
  } catch (...) {
    if (fresh) drop_unowned(loop, sig);
    throw;
  }
  Callback replaced;  // destroyed after the lock is released
  std::lock_guard lock(r.mu);
  Slot& slot = r.slots[sig];
  // The target goes first: once the forwarder is the disposition, a signal
  // taken by another thread must find this (blocking) thread to re-send to.
  pid_t old_target = g_forward.target[sig].exchange(state->tid(), std::memory_order_acq_rel);
  if (!slot.installed) {
    try {
      install_forwarder_locked(sig, slot);
    } catch (...) {
      g_forward.target[sig].store(old_target, std::memory_order_release);
      throw;
    }
  }
  if (slot.owner && slot.owner != state) {
    // The signal moves here: the old loop stops reading it on its own thread.
    EventLoop* old = slot.owner->loop();
    try {
      old->call_soon([old, sig] { drop_unowned(*old, sig); });
    } catch (const RuntimeError&) {
      // A closed loop reads nothing any more; its signalfd goes with it.
    }
  }
  replaced = std::exchange(slot.callback, std::move(callback));
  slot.owner = state;
  slot.token = r.next_token++;
  return slot.token;
}

// Owner thread. token 0: whatever handler this loop holds for `sig`.
bool remove_on_owner(EventLoop& loop, int sig, std::uint64_t token) {
  Registry& r = registry();
  Callback dead;  // destroyed after the lock is released
  LoopSignals* state = nullptr;
  {
    std::lock_guard lock(r.mu);
    auto it = r.loops.find(&loop);
    if (it == r.loops.end()) return false;
    Slot& slot = r.slots[sig];
    if (slot.owner != it->second || (token != 0 && slot.token != token)) return false;
    state = it->second;
    dead = std::move(slot.callback);
    release_slot_locked(sig, slot);
  }
  state->unwatch(sig, false);
  if (state->empty()) {
    {
      std::lock_guard lock(r.mu);
      r.loops.erase(&loop);
    }
    loop.remove_reader(state->fd());
  }
  return true;
}

bool holds(EventLoop& loop, int sig) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.loops.find(&loop);
  return it != r.loops.end() && r.slots[sig].owner == it->second;
}

// ------------------------------------------------------------ run() and SIGINT

// Restores SIGINT's default action and takes it: the process ends as an
// uncaught KeyboardInterrupt would end a Python program.
[[noreturn]] void die_of_sigint() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGINT, &dfl, nullptr);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, SIGINT);
  ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(SIGINT);
  std::_Exit(128 + SIGINT);  // only if SIGINT's default action was somehow not taken
}

// run()'s SIGINT handling. Created on run()'s thread (the process's main
// thread) before the runtime's workers start, it blocks SIGINT there, so the
// workers (and the blocking-pool threads they start) inherit the block: a
// SIGINT sent to the process then stays pending until loop 0's signalfd
// reads it. No thread of the runtime ever runs a signal handler for it, and a
// SIGINT that arrives before arm() has finished is read once it has, not
// lost. The destructor, after the runtime is gone, unblocks it again.
class RunSigint final : public RunInterrupt {
 public:
  explicit RunSigint(bool was_blocked) : was_blocked_(was_blocked) {}
  RunSigint(const RunSigint&) = delete;
  RunSigint& operator=(const RunSigint&) = delete;

  ~RunSigint() override {
    if (was_blocked_) return;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, SIGINT);
    ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  }

  void arm(Runtime& runtime, TaskRef main) override {
    EventLoop& loop = runtime.loop(0);
    // A worker loop counts the constructing thread as its owner until the
    // worker thread starts and binds itself: wait for that, so the call_soon
    // below goes through the loop's inbox.
    while (!loop.is_running()) std::this_thread::yield();
    std::promise<std::uint64_t> armed;
    std::future<std::uint64_t> token = armed.get_future();
    auto count = count_;
    loop.call_soon([&loop, &armed, main, count] {
      try {
        armed.set_value(add_on_owner(loop, SIGINT, [main, count] {
          if (count->fetch_add(1, std::memory_order_relaxed) == 0 && !main.done()) {
            main.cancel();
            return;
          }
          die_of_sigint();
        }));
      } catch (...) {
        armed.set_exception(std::current_exception());
      }
    });
    token_ = token.get();
    loop_ = &loop;
  }

  std::exception_ptr finish(TaskRef main) override {
    if (!loop_) return nullptr;
    std::promise<void> removed;
    std::future<void> done = removed.get_future();
    loop_->call_soon([this, &removed] {
      remove_on_owner(*loop_, SIGINT, token_);
      removed.set_value();
    });
    done.wait();
    // ordering: the count was written on the loop's thread; the promise
    // hand-off above orders it before this read.
    if (count_->load(std::memory_order_relaxed) > 0 && main.done() && main.cancelled() &&
        main.uncancel() == 0)
      return std::make_exception_ptr(KeyboardInterrupt());
    return nullptr;
  }

 private:
  const bool was_blocked_;  // SIGINT was already blocked on run()'s thread: leave it so
  EventLoop* loop_ = nullptr;
  std::uint64_t token_ = 0;
  std::shared_ptr<std::atomic<int>> count_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace

std::unique_ptr<RunInterrupt> make_run_interrupt() {
  if (this_tid() != ::getpid()) return nullptr;  // the main thread only, as asyncio
  struct sigaction current {};
  if (::sigaction(SIGINT, nullptr, &current) != 0 || (current.sa_flags & SA_SIGINFO) ||
      current.sa_handler != SIG_DFL)
    return nullptr;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    if (r.slots[SIGINT].owner) return nullptr;
  }
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, SIGINT);
  sigset_t old;
  if (::pthread_sigmask(SIG_BLOCK, &one, &old) != 0) return nullptr;
  return std::make_unique<RunSigint>(sigismember(&old, SIGINT) == 1);
}

}  // namespace detail

void add_signal_handler(EventLoop& loop, int sig, Callback cb) {
  detail::check_signal("add_signal_handler", sig);
  if (!cb) throw ValueError("add_signal_handler: empty callback");
  if (loop.is_closed()) throw RuntimeError("add_signal_handler: Event loop is closed");
  if (detail::on_loop_thread(loop)) {
    detail::add_on_owner(loop, sig, std::move(cb));
    return;
  }
  loop.call_soon([&loop, sig, cb = std::move(cb)]() mutable {
    detail::add_on_owner(loop, sig, std::move(cb));
  });
}

bool remove_signal_handler(EventLoop& loop, int sig) {
  detail::check_signal("remove_signal_handler", sig);
  if (detail::on_loop_thread(loop)) return detail::remove_on_owner(loop, sig, 0);
  bool held = detail::holds(loop, sig);
  loop.call_soon([&loop, sig] { detail::remove_on_owner(loop, sig, 0); });
  return held;
}

}  // namespace weft

// SignalFd: one loop's signalfd, the signals its thread blocks to read them
// there, and the reads. The registry that decides which loop reads which
// signal, the forwarder for deliveries that land on other threads and the
// callbacks live in weft::io (io/src/signals.cpp); this is the part that a
// loop parks on, registered with that loop's selector like any other fd.
//
// Invariants:
// - Owner-only: every member but the destructor runs on the thread that
//   created it (signal masks are per thread, and signalfd reports the
//   reading thread's own pending signals plus the process's).
// - watch() blocks a signal before the signalfd reads it, so a signal meant
//   for this thread waits pending for the read instead of running a handler;
//   unwatch() takes it out of the signalfd, consumes what is still pending
//   for it, and only then unblocks what watch() blocked (a signal that was
//   blocked already stays blocked).
#pragma once

#include <signal.h>

#include <cstddef>

namespace weft::detail {

class SignalFd {
 public:
  /// @throws std::system_error if signalfd fails.
  SignalFd();
  /// Closes the fd; the thread's mask is left as it is (the owner may be gone).
  ~SignalFd();
  SignalFd(const SignalFd&) = delete;
  SignalFd& operator=(const SignalFd&) = delete;

  int fd() const noexcept { return fd_; }
  /// True when no signal is watched.
  bool empty() const noexcept { return watched_ == 0; }
  /// Blocks `sig` on this thread and reads it from the fd (no-op if watched).
  /// @throws std::system_error if pthread_sigmask or signalfd fail.
  void watch(int sig);
  /// Stops reading `sig` and unblocks it where watch() blocked it; returns
  /// how many deliveries were still pending for this thread (consumed here,
  /// for the caller to forward or drop). No-op (0) if not watched.
  int unwatch(int sig) noexcept;
  /// Reads up to `max` delivered signal numbers into `out` without blocking;
  /// returns how many (0: nothing pending). EINTR is retried.
  std::size_t read(int* out, std::size_t max) noexcept;

 private:
  void restore_mask(int sig) noexcept;

  int fd_ = -1;
  sigset_t mask_;           // the signals the signalfd reads
  sigset_t blocked_by_us_;  // blocked by watch(), unblocked by unwatch()
  int watched_ = 0;
};

}  // namespace weft::detail

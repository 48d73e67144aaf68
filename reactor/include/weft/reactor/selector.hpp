// Selector: the seam between a loop and the kernel's readiness API.
//
// The loop owns one Selector (docs/architecture.md, invariant 6: an fd is registered
// with exactly one loop's selector). The interface is what an io_uring
// selector would also provide: interest registration per fd, a blocking wait
// with a timeout, and a wake-up that interrupts the wait from any thread.
// The readiness side is epoll; its eventfd is registered only in its own
// epoll set, so waking one loop never disturbs another.
//
// Completion-based I/O (io_uring, issue 3): io_ring() creates the loop's
// IoRing on first use (stream transports over sockets ask for it). From then
// on wait() blocks in io_uring_enter instead of epoll_wait: the ring watches
// the epoll set with a multishot poll, and wait() calls epoll_wait(0) only
// when that poll fired or when the previous epoll_wait reported fds (they are
// level-triggered and may still be ready; an epoll set with nothing ready
// wakes the poll as soon as something becomes ready, so nothing is missed).
// A wake() still writes the eventfd, which makes the epoll set readable and
// so completes the ring's poll.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <weft/reactor/io_ring.hpp>

namespace weft::detail {

struct ReadyEvent {
  int fd;
  bool readable;
  bool writable;
};

class Selector {
 public:
  /// `io_uring` false: io_ring() is always null. `io_uring_multishot`: see IoRing::create.
  Selector(bool io_uring, bool io_uring_multishot);
  ~Selector();
  Selector(const Selector&) = delete;
  Selector& operator=(const Selector&) = delete;

  /// Sets the interest for `fd` (none = unregister). Owner thread only.
  /// @throws std::system_error (e.g. EBADF, EPERM for a regular file).
  void set_interest(int fd, bool read, bool write);
  /// Waits up to timeout_ns (-1: forever, 0: poll) and appends ready fds.
  /// Wake-ups through wake() are consumed and not reported.
  void wait(std::int64_t timeout_ns, std::vector<ReadyEvent>& out);
  /// Interrupts a current or the next wait(); any thread, async-signal-safe.
  void wake() noexcept;
  /// Hands queued ring requests to the kernel without waiting; called where
  /// the loop skips a poll (busy) and when it stops running, so that a write
  /// never waits for the loop's next wait to leave. Owner thread only.
  void submit_queued() {
    if (ring_) ring_->submit();
  }
  /// True while an fd is registered or a ring request is outstanding.
  bool has_io() const noexcept { return registered_ > 0 || (ring_ && ring_->active_ops() > 0); }
  /// The loop's io_uring, created on the first call; null where io_uring is
  /// unavailable (IoRing::create). Owner thread only.
  IoRing* io_ring();
  /// The ring's requests by kind (for metrics; any thread reads).
  IoOpCounters io_counters;

 private:
  void wait_epoll(int timeout_ms, std::vector<ReadyEvent>& out);

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::size_t registered_ = 0;
  std::unique_ptr<IoRing> ring_;
  const bool io_uring_multishot_;
  bool ring_unavailable_;                // io_uring off, or creation failed for good
  bool epoll_maybe_ready_ = false;       // with a ring: the epoll set may have ready fds
  std::vector<std::uint32_t> interest_;  // by fd: EPOLLIN/EPOLLOUT bits currently set
};

}  // namespace weft::detail

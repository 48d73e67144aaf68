// Selector: the seam between a loop and the kernel's readiness API.
//
// The loop owns one Selector (architecture invariant 6: an fd is registered
// with exactly one loop's selector). The interface is what an io_uring
// selector would also provide: interest registration per fd, a blocking wait
// with a timeout, and a wake-up that interrupts the wait from any thread.
// This is the epoll implementation; its eventfd is registered only in its
// own epoll set, so waking one loop never disturbs another.
#pragma once

#include <cstdint>
#include <vector>

namespace weft::detail {

struct ReadyEvent {
  int fd;
  bool readable;
  bool writable;
};

class Selector {
 public:
  Selector();
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
  /// Number of fds registered (the eventfd excluded).
  std::size_t registered() const noexcept { return registered_; }

 private:
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::size_t registered_ = 0;
  std::vector<std::uint32_t> interest_;  // by fd: EPOLLIN/EPOLLOUT bits currently set
};

}  // namespace weft::detail

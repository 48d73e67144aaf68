#include <weft/reactor/selector.hpp>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace weft::detail {
namespace {
[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}
}  // namespace

Selector::Selector(bool io_uring, bool io_uring_multishot)
    : io_uring_multishot_(io_uring_multishot), ring_unavailable_(!io_uring) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_errno("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    int err = errno;
    ::close(epoll_fd_);
    throw std::system_error(err, std::generic_category(), "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) < 0) {
    int err = errno;
    ::close(wake_fd_);
    ::close(epoll_fd_);
    throw std::system_error(err, std::generic_category(), "epoll_ctl(eventfd)");
  }
}

Selector::~Selector() {
  ring_.reset();  // it watches epoll_fd_
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void Selector::set_interest(int fd, bool read, bool write) {
  if (fd < 0) throw std::system_error(EBADF, std::generic_category(), "selector: negative fd");
  if (static_cast<std::size_t>(fd) >= interest_.size()) interest_.resize(fd + 1, 0);
  std::uint32_t want = (read ? EPOLLIN : 0u) | (write ? EPOLLOUT : 0u);
  std::uint32_t have = interest_[fd];
  if (want == have) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = fd;
  int op = have == 0 ? EPOLL_CTL_ADD : (want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD);
  if (::epoll_ctl(epoll_fd_, op, fd, &ev) < 0) {
    // A closed fd leaves epoll on its own: forget it rather than fail the removal.
    if (op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)) {
      interest_[fd] = 0;
      --registered_;
      return;
    }
    throw_errno("epoll_ctl(fd " + std::to_string(fd) + ")");
  }
  if (have == 0) ++registered_;
  if (want == 0) --registered_;
  interest_[fd] = want;
}

IoRing* Selector::io_ring() {
  if (ring_ || ring_unavailable_) return ring_.get();
  errno = 0;
  ring_ = IoRing::create(epoll_fd_, io_uring_multishot_);
  if (ring_) ring_->counters = &io_counters;
  // Out of descriptors or memory may pass; anything else will not.
  if (!ring_ && errno != EMFILE && errno != ENFILE && errno != ENOMEM) ring_unavailable_ = true;
  return ring_.get();
}

void Selector::wait(std::int64_t timeout_ns, std::vector<ReadyEvent>& out) {
  if (!ring_) {
    int timeout_ms = timeout_ns < 0 ? -1 : static_cast<int>((timeout_ns + 999'999) / 1'000'000);
    return wait_epoll(timeout_ms, out);
  }
  if (epoll_maybe_ready_) timeout_ns = 0;
  if (ring_->wait(timeout_ns)) epoll_maybe_ready_ = true;
  if (epoll_maybe_ready_) wait_epoll(0, out);
}

void Selector::wait_epoll(int timeout_ms, std::vector<ReadyEvent>& out) {
  epoll_event events[256];
  int n = ::epoll_wait(epoll_fd_, events, 256, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;
    throw_errno("epoll_wait");
  }
  std::size_t reported = 0;
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == wake_fd_) {
      std::uint64_t drained;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &drained, sizeof drained);
      continue;
    }
    std::uint32_t e = events[i].events;
    bool err = e & (EPOLLERR | EPOLLHUP);
    out.push_back({fd, (e & EPOLLIN) || err, (e & EPOLLOUT) || err});
    ++reported;
  }
  // Level-triggered fds just reported may still be ready; the drained eventfd is not.
  epoll_maybe_ready_ = reported > 0;
}

void Selector::wake() noexcept {
  std::uint64_t one = 1;
  // EAGAIN: the counter is saturated, so the eventfd is readable already and
  // the wake-up is not lost. EINTR (a signal handler ran first) wrote
  // nothing: a wake-up dropped there leaves the loop parked with work
  // queued (found by injecting it, tests/fault_injection_test.cpp).
  while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

}  // namespace weft::detail

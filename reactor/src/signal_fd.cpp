// The invariants are listed in signal_fd.hpp.
#include <weft/reactor/signal_fd.hpp>

#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>

namespace weft::detail {
namespace {
[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}
}  // namespace

SignalFd::SignalFd() {
  sigemptyset(&mask_);
  sigemptyset(&blocked_by_us_);
  fd_ = ::signalfd(-1, &mask_, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) throw_errno(errno, "signalfd");
}

SignalFd::~SignalFd() { ::close(fd_); }

void SignalFd::watch(int sig) {
  if (sigismember(&mask_, sig)) return;
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigset_t old;
  if (int err = ::pthread_sigmask(SIG_BLOCK, &one, &old); err != 0)
    throw_errno(err, "pthread_sigmask");
  if (!sigismember(&old, sig)) sigaddset(&blocked_by_us_, sig);
  sigaddset(&mask_, sig);
  if (::signalfd(fd_, &mask_, 0) < 0) {
    int err = errno;
    sigdelset(&mask_, sig);
    restore_mask(sig);
    throw_errno(err, "signalfd");
  }
  ++watched_;
}

int SignalFd::unwatch(int sig) noexcept {
  if (!sigismember(&mask_, sig)) return 0;
  sigdelset(&mask_, sig);
  --watched_;
  ::signalfd(fd_, &mask_, 0);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  timespec zero{};
  int pending = 0;
  while (::sigtimedwait(&one, nullptr, &zero) == sig) ++pending;
  restore_mask(sig);
  return pending;
}

std::size_t SignalFd::read(int* out, std::size_t max) noexcept {
  constexpr std::size_t kBatch = 16;
  signalfd_siginfo infos[kBatch];
  std::size_t got = 0;
  while (got < max) {
    std::size_t want = std::min(kBatch, max - got);
    ssize_t n = ::read(fd_, infos, want * sizeof infos[0]);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: drained
    std::size_t k = static_cast<std::size_t>(n) / sizeof infos[0];
    for (std::size_t i = 0; i < k; ++i) out[got++] = static_cast<int>(infos[i].ssi_signo);
    if (k < want) break;
  }
  return got;
}

void SignalFd::restore_mask(int sig) noexcept {
  if (!sigismember(&blocked_by_us_, sig)) return;
  sigdelset(&blocked_by_us_, sig);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
}

}  // namespace weft::detail

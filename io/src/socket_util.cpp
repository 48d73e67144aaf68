// Socket helpers shared by the io sources (see socket_util.hpp).
#include "socket_util.hpp"

#include <weft/errors.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <utility>

namespace weft::detail {

std::system_error os_error(int err, const std::string& op) {
  return std::system_error(err, std::generic_category(), op);
}

void throw_os_error(int err, const std::string& op) { throw os_error(err, op); }

void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL)
      ::signal(SIGPIPE, SIG_IGN);
  });
}

int make_socket(int family, int type, int protocol) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw_os_error(errno, "socket");
  return fd;
}

void check_tuning(const SocketTuning& tuning, const char* where) {
  if (tuning.recv_buffer_size < 0 || tuning.send_buffer_size < 0)
    throw ValueError(std::string(where) + ": buffer sizes cannot be negative");
}

namespace {
void set_int_option(int fd, int level, int name, int value, const char* option,
                    const std::string& where) {
  if (::setsockopt(fd, level, name, &value, sizeof value) < 0)
    throw_os_error(errno, where + ": setsockopt(" + option + ")");
}
}  // namespace

void apply_tuning(int fd, int family, const SocketTuning& tuning, const std::string& where) {
  if (family == AF_INET || family == AF_INET6)
    set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, tuning.nodelay ? 1 : 0, "TCP_NODELAY", where);
  if (tuning.keepalive) set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE", where);
  if (tuning.recv_buffer_size > 0)
    set_int_option(fd, SOL_SOCKET, SO_RCVBUF, tuning.recv_buffer_size, "SO_RCVBUF", where);
  if (tuning.send_buffer_size > 0)
    set_int_option(fd, SOL_SOCKET, SO_SNDBUF, tuning.send_buffer_size, "SO_SNDBUF", where);
}

int check_stream_socket(int fd, const std::string& where) {
  if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) throw_os_error(fd < 0 ? EBADF : errno, where);
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
    if (errno == ENOTSOCK)
      throw ValueError(where + ": fd " + std::to_string(fd) + " is not a socket");
    throw_os_error(errno, where);
  }
  if (type != SOCK_STREAM)
    throw ValueError(where + ": a stream socket was expected, got socket type " +
                     std::to_string(type));
  int family = AF_UNSPEC;
  len = sizeof family;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0) throw_os_error(errno, where);
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
    throw ValueError(where + ": unsupported socket family " + std::to_string(family));
  return family;
}

void adopt_fd(int fd, const std::string& where) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
      ::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    throw_os_error(errno, where);
}

std::optional<Address> peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return std::nullopt;
  try {
    return Address::from_storage(ss, len);
  } catch (const ValueError&) {
    return std::nullopt;
  }
}

std::optional<Address> local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return std::nullopt;
  try {
    return Address::from_storage(ss, len);
  } catch (const ValueError&) {
    return std::nullopt;
  }
}

bool run_on_loop(EventLoop& loop, Callback fn) noexcept {
  if (current_loop() == &loop) {
    fn();
    return true;
  }
  try {
    loop.call_soon(std::move(fn));
    return true;
  } catch (...) {
    return false;  // the loop is closed: its registrations go with it
  }
}

void close_on_loop(EventLoop& loop, int fd) noexcept {
  // The fd is closed exactly once: by the callback on the loop's thread, or,
  // when the loop never runs it (refused, or torn down with the callback still
  // queued: the fd leaked there before, found by the leak check), when the
  // last copy of the callback goes; no loop watches the fd then.
  struct Closer {
    int fd;
    explicit Closer(int f) noexcept : fd(f) {}
    Closer(const Closer&) = delete;
    Closer& operator=(const Closer&) = delete;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  };
  auto closer = std::make_shared<Closer>(fd);
  auto fn = [&loop, closer] {
    loop.remove_reader(closer->fd);
    loop.remove_writer(closer->fd);
    ::close(std::exchange(closer->fd, -1));
  };
  (void)run_on_loop(loop, fn);
}

}  // namespace weft::detail

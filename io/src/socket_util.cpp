// Socket helpers shared by the io sources (see socket_util.hpp).
#include "socket_util.hpp"

#include <weft/errors.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace weft::detail {

std::system_error os_error(int err, const std::string& op) {
  return std::system_error(err, std::generic_category(), op);
}

void throw_os_error(int err, const std::string& op) { throw os_error(err, op); }

int make_socket(int family, int type, int protocol) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw_os_error(errno, "socket");
  return fd;
}

void set_nodelay(int fd) noexcept {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
  auto fn = [&loop, fd] {
    loop.remove_reader(fd);
    loop.remove_writer(fd);
    ::close(fd);
  };
  if (!run_on_loop(loop, fn)) ::close(fd);
}

}  // namespace weft::detail

// open_connection / open_unix_connection: resolve, connect each address in
// turn (with the per-address timeout), wrap the socket into streams on the
// running loop.
#include <weft/errors.hpp>
#include <weft/streams.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "socket_util.hpp"
#include "transport.hpp"

namespace weft {
namespace {

detail::SocketTuning tuning_of(const ConnectOptions& o) {
  return {o.nodelay, o.keepalive, o.recv_buffer_size, o.send_buffer_size};
}

// Adopts options.sock (asyncio's sock=): checks first, so that the caller
// still owns the fd if anything is wrong.
std::pair<StreamReader, StreamWriter> adopt_connection(const ConnectOptions& options,
                                                       const char* where) {
  const int fd = *options.sock;
  const std::string what = std::string(where) + " sock=" + std::to_string(fd);
  const int family = detail::check_stream_socket(fd, what);
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) < 0)
    detail::throw_os_error(errno, what);  // ENOTCONN: not connected
  detail::apply_tuning(fd, family, tuning_of(options), what);
  detail::adopt_fd(fd, what);
  return detail::make_fd_streams(fd, detail::FdKind::socket, options.limit);
}

}  // namespace

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectOptions options) {
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  detail::check_tuning(tuning_of(options), "open_connection");
  if (options.sock) {
    if (!host.empty() || port != 0)
      throw ValueError("open_connection: host/port and sock can not be specified at the same time");
    co_return adopt_connection(options, "open_connection");
  }
  std::vector<AddrInfo> infos;
  try {
    Address literal = Address::ip(host, port);  // IP literals skip the resolver (as asyncio)
    infos.push_back({literal.family(), SOCK_STREAM, 0, literal});
  } catch (const ValueError&) {
  }
  if (infos.empty())
    infos =
        co_await get_running_loop().getaddrinfo(host, std::to_string(port), AF_UNSPEC, SOCK_STREAM);
  if (infos.empty())
    throw std::system_error(EAI_NONAME, gai_category(),
                            "getaddrinfo " + host + ":" + std::to_string(port));
  const detail::SocketTuning tuning = tuning_of(options);
  std::exception_ptr last;
  for (const AddrInfo& info : infos) {
    try {
      if (options.local_addr && options.local_addr->family() != info.family)
        detail::throw_os_error(EAFNOSUPPORT, "connect to " + info.address.to_string() +
                                                 ": local_addr " + options.local_addr->to_string() +
                                                 " is of another address family");
      int fd = detail::make_socket(info.family, SOCK_STREAM, info.protocol);
      try {
        // Buffer sizes before connect: the window scale is fixed by the handshake.
        detail::apply_tuning(fd, info.family, tuning, "connect to " + info.address.to_string());
        if (options.local_addr &&
            ::bind(fd, options.local_addr->sockaddr_ptr(), options.local_addr->length()) < 0)
          detail::throw_os_error(errno, "bind to local address " + options.local_addr->to_string());
      } catch (...) {
        ::close(fd);
        throw;
      }
      co_await detail::connect_socket(fd, info.address, options.timeout);
      co_return detail::make_fd_streams(fd, detail::FdKind::socket, options.limit);
    } catch (const std::exception&) {
      last = std::current_exception();
    }
  }
  std::rethrow_exception(last);
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectOptions options) {
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  detail::check_tuning(tuning_of(options), "open_unix_connection");
  if (options.sock) {
    if (!path.empty())
      throw ValueError("open_unix_connection: path and sock can not be specified at the same time");
    co_return adopt_connection(options, "open_unix_connection");
  }
  Address address = Address::unix_path(path);
  int fd = detail::make_socket(AF_UNIX, SOCK_STREAM);
  try {
    detail::apply_tuning(fd, AF_UNIX, tuning_of(options), "connect to " + path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  co_await detail::connect_socket(fd, address, options.timeout);
  co_return detail::make_fd_streams(fd, detail::FdKind::socket, options.limit);
}

}  // namespace weft

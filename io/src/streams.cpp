// open_connection / open_unix_connection: resolve, connect each address in
// turn (with the per-address timeout), wrap the socket into streams on the
// running loop.
#include <weft/errors.hpp>
#include <weft/streams.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "socket_util.hpp"
#include "transport.hpp"

namespace weft {

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectOptions options) {
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
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
  std::exception_ptr last;
  for (const AddrInfo& info : infos) {
    try {
      int fd = detail::make_socket(info.family, SOCK_STREAM, info.protocol);
      co_await detail::connect_socket(fd, info.address, options.timeout);
      detail::set_nodelay(fd);
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
  Address address = Address::unix_path(path);
  int fd = detail::make_socket(AF_UNIX, SOCK_STREAM);
  co_await detail::connect_socket(fd, address, options.timeout);
  co_return detail::make_fd_streams(fd, detail::FdKind::socket, options.limit);
}

}  // namespace weft

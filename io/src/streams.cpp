// open_connection / open_unix_connection: resolve, connect each address in
// turn (with the per-address timeout) or race them staggered (Happy
// Eyeballs), wrap the socket into streams on the running loop.
//
// The race (RFC 8305, asyncio's staggered_race): attempts are tasks; the
// next one starts when the delay passes or an attempt fails. The first
// attempt seen connected wins; every other is cancelled and awaited, and an
// fd one of them connected anyway is closed, so no fd outlives the race.
#include <weft/detail/connect.hpp>
#include <weft/errors.hpp>
#include <weft/sock_ops.hpp>
#include <weft/streams.hpp>
#include <weft/task.hpp>
#include <weft/wait.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>

#include "socket_util.hpp"
#include "transport.hpp"

namespace weft {
namespace {

detail::SocketTuning tuning_of(const ConnectOptions& o) {
  return {o.nodelay, o.keepalive, o.recv_buffer_size, o.send_buffer_size};
}

// Adopts options.sock (asyncio's sock=): checks first, so that the caller
// still owns the fd if anything is wrong. Returns the fd, now weft's.
int adopt_connection(const ConnectOptions& options, const char* where) {
  const int fd = *options.sock;
  const std::string what = std::string(where) + " sock=" + std::to_string(fd);
  const int family = detail::check_stream_socket(fd, what);
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) < 0)
    detail::throw_os_error(errno, what);  // ENOTCONN: not connected
  detail::apply_tuning(fd, family, tuning_of(options), what);
  detail::adopt_fd(fd, what);
  return fd;
}

}  // namespace

namespace detail {

Coro<std::pair<StreamReader, StreamWriter>> connected_streams(int fd,
                                                              const ConnectOptions& options) {
  if (!options.ssl) co_return make_fd_streams(fd, FdKind::socket, options.limit);
  const SslContext& ctx = *options.ssl;
  if (ctx.is_server()) {
    ::close(fd);
    throw ValueError("open_connection: ssl must be a client context (SslContext::client())");
  }
  if (ctx.check_hostname() && options.server_hostname.empty()) {
    ::close(fd);
    throw ValueError("You must set server_hostname when using ssl without a host");
  }
  auto t = make_transport(fd, FdKind::socket, true, true, options.limit);
  auto owner = std::make_shared<StreamOwner>(t);  // closes the connection if we throw
  co_await tls_handshake(t, detail::HandleAccess::state(ctx), false, options.server_hostname,
                         options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  co_return std::pair<StreamReader, StreamWriter>(
      detail::HandleAccess::make<StreamReader>(t->reader(), owner),
      detail::HandleAccess::make<StreamWriter>(t, owner));
}

}  // namespace detail

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectOptions options) {
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  detail::check_tuning(tuning_of(options), "open_connection");
  if (options.interleave < 0) throw ValueError("open_connection: interleave cannot be negative");
  if (options.sock) {
    if (!host.empty() || port != 0)
      throw ValueError("open_connection: host/port and sock can not be specified at the same time");
    int fd = adopt_connection(options, "open_connection");
    co_return co_await detail::connected_streams(fd, options);
  }
  // asyncio: the host is the name TLS sends and checks unless one is given.
  if (options.ssl && options.server_hostname.empty()) options.server_hostname = host;
  std::vector<AddrInfo> infos;
  try {
    Address literal = Address::ip(host, port);  // IP literals skip the resolver (as asyncio)
    infos.push_back({literal.family(), SOCK_STREAM, 0, literal});
  } catch (const ValueError&) {
  }
  if (infos.empty())
    infos = co_await weft::getaddrinfo(get_running_loop(), host, std::to_string(port), AF_UNSPEC,
                                       SOCK_STREAM);
  if (infos.empty())
    throw std::system_error(EAI_NONAME, gai_category(),
                            "getaddrinfo " + host + ":" + std::to_string(port));
  co_return co_await detail::open_connection_to(std::move(infos), options);
}

namespace detail {

std::vector<AddrInfo> interleave_addrinfos(std::vector<AddrInfo> infos, int first_family_count) {
  std::vector<int> families;
  std::vector<std::vector<AddrInfo>> by_family;
  for (AddrInfo& info : infos) {
    auto it = std::find(families.begin(), families.end(), info.family);
    if (it == families.end()) {
      families.push_back(info.family);
      by_family.emplace_back();
      it = families.end() - 1;
    }
    by_family[static_cast<std::size_t>(it - families.begin())].push_back(std::move(info));
  }
  std::vector<AddrInfo> out;
  std::vector<std::size_t> taken(by_family.size(), 0);
  if (!by_family.empty()) {
    const std::size_t first = std::min<std::size_t>(
        static_cast<std::size_t>(std::max(first_family_count - 1, 0)), by_family[0].size());
    for (; taken[0] < first; ++taken[0]) out.push_back(by_family[0][taken[0]]);
  }
  for (bool more = true; more;) {
    more = false;
    for (std::size_t f = 0; f < by_family.size(); ++f) {
      if (taken[f] < by_family[f].size()) {
        out.push_back(by_family[f][taken[f]++]);
        more = true;
      }
    }
  }
  return out;
}

namespace {

// One address: a tuned (and bound, with local_addr) socket, connected. The
// fd is closed on failure and on cancellation (connect_socket).
Coro<int> connect_one(AddrInfo info, ConnectOptions options) {
  if (options.local_addr && options.local_addr->family() != info.family)
    throw_os_error(EAFNOSUPPORT, "connect to " + info.address.to_string() + ": local_addr " +
                                     options.local_addr->to_string() +
                                     " is of another address family");
  int fd = make_socket(info.family, SOCK_STREAM, info.protocol);
  try {
    // Buffer sizes before connect: the window scale is fixed by the handshake.
    apply_tuning(fd, info.family, tuning_of(options), "connect to " + info.address.to_string());
    if (options.local_addr &&
        ::bind(fd, options.local_addr->sockaddr_ptr(), options.local_addr->length()) < 0)
      throw_os_error(errno, "bind to local address " + options.local_addr->to_string());
  } catch (...) {
    ::close(fd);
    throw;
  }
  co_await connect_socket(fd, info.address, options.timeout);
  co_return fd;
}

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

// Every address failed: as asyncio, the error itself when they all read the
// same, else one error naming them all.
[[noreturn]] void raise_all(const std::vector<std::exception_ptr>& errors) {
  std::vector<std::string> messages;
  for (const auto& e : errors) messages.push_back(message_of(e));
  if (std::all_of(messages.begin(), messages.end(),
                  [&](const std::string& m) { return m == messages[0]; }))
    std::rethrow_exception(errors[0]);
  std::string joined = "Multiple exceptions: ";
  for (std::size_t i = 0; i < messages.size(); ++i) joined += (i ? "; " : "") + messages[i];
  bool all_timeouts = true;
  std::optional<std::error_code> code;
  for (const auto& e : errors) {
    try {
      std::rethrow_exception(e);
    } catch (const TimeoutError&) {
    } catch (const std::system_error& x) {
      all_timeouts = false;
      if (!code) code = x.code();
    } catch (...) {
      all_timeouts = false;
    }
  }
  if (all_timeouts) throw TimeoutError(joined);
  if (code) throw std::system_error(*code, joined);
  std::rethrow_exception(errors[0]);
}

// A loser's connect may have completed before its cancel took: its fd is
// closed here, so that nothing is left open.
Coro<void> close_if_connected(Task<int> attempt) {
  try {
    int fd = co_await attempt;
    ::close(fd);
  } catch (...) {
    // Failed or cancelled: connect_socket closed the fd.
  }
}

// RFC 8305's staggered connects (asyncio's staggered_race).
Coro<int> race(std::vector<AddrInfo> infos, ConnectOptions options) {
  const Duration delay = *options.happy_eyeballs_delay;
  std::vector<std::exception_ptr> errors;
  std::vector<Task<int>> pending;
  std::size_t next = 0;
  std::optional<int> winner;
  try {
    for (;;) {
      if (next < infos.size()) pending.push_back(create_task(connect_one(infos[next++], options)));
      WaitOptions wait_options;
      wait_options.return_when = ReturnWhen::FIRST_COMPLETED;
      if (next < infos.size()) wait_options.timeout = delay;
      auto result = co_await wait(pending, wait_options);
      for (Task<int>& done : result.done) {
        try {
          int fd = co_await done;
          if (winner)
            ::close(fd);  // two completed in the same round: the first in order wins
          else
            winner = fd;
        } catch (const std::exception&) {
          errors.push_back(std::current_exception());
        }
      }
      pending = std::move(result.pending);
      if (winner || (pending.empty() && next == infos.size())) break;
    }
  } catch (...) {
    // Our own cancellation: stop every attempt; their fds are closed by
    // connect_socket, or by close_if_connected where one connected anyway.
    for (Task<int>& t : pending) {
      t.cancel();
      create_task(close_if_connected(t));
    }
    if (winner) ::close(*winner);
    throw;
  }
  for (Task<int>& t : pending) t.cancel();
  for (Task<int>& t : pending) co_await close_if_connected(t);
  if (!winner) raise_all(errors);
  co_return *winner;
}

}  // namespace

Coro<std::pair<StreamReader, StreamWriter>> open_connection_to(std::vector<AddrInfo> infos,
                                                               ConnectOptions options) {
  if (infos.empty()) throw ValueError("open_connection: no address to connect to");
  int interleave = options.interleave;
  if (options.happy_eyeballs_delay && interleave == 0) interleave = 1;
  if (interleave > 0) infos = interleave_addrinfos(std::move(infos), interleave);
  // The TLS handshake comes after the loop: its failure is not a reason to
  // try the next address (as asyncio).
  int fd = -1;
  if (options.happy_eyeballs_delay && infos.size() > 1) {
    fd = co_await race(std::move(infos), options);
  } else {
    std::vector<std::exception_ptr> errors;
    for (const AddrInfo& info : infos) {
      try {
        fd = co_await connect_one(info, options);
        break;
      } catch (const std::exception&) {
        errors.push_back(std::current_exception());
      }
    }
    if (fd < 0) raise_all(errors);
  }
  co_return co_await connected_streams(fd, options);
}

}  // namespace detail

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectOptions options) {
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  detail::check_tuning(tuning_of(options), "open_unix_connection");
  if (options.sock) {
    if (!path.empty())
      throw ValueError("open_unix_connection: path and sock can not be specified at the same time");
    int fd = adopt_connection(options, "open_unix_connection");
    co_return co_await detail::connected_streams(fd, options);
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
  co_return co_await detail::connected_streams(fd, options);
}

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port) {
  return open_connection(std::move(host), port, ConnectOptions());
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path) {
  return open_unix_connection(std::move(path), ConnectOptions());
}

}  // namespace weft

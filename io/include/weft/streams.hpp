// Stream functions: asyncio.open_connection / start_server and their Unix
// socket variants (api.md section 7).
//
// Connected sockets are non-blocking, close-on-exec, and TCP sockets have
// TCP_NODELAY set. Errors are std::system_error carrying the errno, the
// operation and the address ("connect to 127.0.0.1:1: Connection refused");
// name resolution failures use gai_category() ("getaddrinfo nosuch.invalid:80:
// Name or service not known"). All functions must be awaited from a task.
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/event_loop.hpp>
#include <weft/server.hpp>
#include <weft/stream_reader.hpp>
#include <weft/stream_writer.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace weft {

/// Runs once per accepted connection, in its own task.
/// GCC 12: bind a lambda to a named ClientHandler before `co_await
/// start_server(handler, ...)`; a lambda converted to std::function inside a
/// co_await expression has its captures destroyed twice (a compiler bug).
using ClientHandler = std::function<Coro<void>(StreamReader, StreamWriter)>;

struct ConnectOptions {
  /// Per-address connect timeout (TimeoutError once every address timed
  /// out); empty = no timeout.
  std::optional<Duration> timeout = {};
  /// The reader's buffer limit. @throws ValueError if 0.
  std::size_t limit = kDefaultStreamLimit;
};

struct ServerOptions {
  int backlog = 100;
  /// SO_REUSEADDR (on by default, as asyncio on POSIX). TCP only.
  bool reuse_address = true;
  /// One listening socket per worker with SO_REUSEPORT. TCP only.
  bool reuse_port = false;
  /// The reader's buffer limit for accepted connections.
  std::size_t limit = kDefaultStreamLimit;
  /// Start accepting at once (asyncio's start_serving=True).
  bool start_serving = true;
};

/// Resolves `host` (an IP literal skips the resolver), then connects to each
/// address in turn until one succeeds.
/// @throws std::system_error (the last address's error), TimeoutError.
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectOptions options = {});
/// @throws std::system_error.
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectOptions options = {});
/// Listens on every address `host` resolves to ("" = all interfaces, port 0
/// = a free port: see Server::sockets()).
/// @throws std::system_error (bind/listen failures name the address).
Coro<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options = {});
/// Listens on a Unix socket path; a stale socket file there is replaced, and
/// the file is removed when the server closes.
/// @throws std::system_error.
Coro<Server> start_unix_server(ClientHandler handler, std::string path, ServerOptions options = {});

}  // namespace weft

// Stream functions: asyncio.open_connection / start_server and their Unix
// socket variants (docs/api.md, io).
//
// Connected sockets are non-blocking, close-on-exec, and TCP sockets have
// TCP_NODELAY set. Errors are std::system_error carrying the errno, the
// operation and the address ("connect to 127.0.0.1:1: Connection refused");
// name resolution failures use gai_category() ("getaddrinfo nosuch.invalid:80:
// Name or service not known"). All functions must be awaited from a task.
//
// TLS (<weft/ssl.hpp>, docs/tls.md): set `ssl` in the options. The functions
// return (and a server runs the handler) once the handshake is done; a
// failed handshake throws SSLError / SSLCertVerificationError, a peer that
// leaves mid-handshake std::system_error(connection_reset), one slower than
// ssl_handshake_timeout std::system_error(connection_aborted) (asyncio's
// ConnectionAbortedError). A server does not report failed handshakes
// (asyncio logs them only in debug mode); the connection is closed.
//
// GCC 12: the options hold strings and shared handles; name them before the
// co_await (`ConnectOptions opts; opts.ssl = ctx; co_await
// open_connection(host, 443, opts);`), never build them inside it. The
// overloads without options build theirs outside the coroutine.
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/event_loop.hpp>
#include <weft/server.hpp>
#include <weft/ssl.hpp>
#include <weft/stream_reader.hpp>
#include <weft/stream_writer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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
  /// Happy Eyeballs (RFC 8305, asyncio's happy_eyeballs_delay): start the
  /// next address's connect this long after the previous one started (or at
  /// once when it fails) while earlier ones are still trying; the first to
  /// connect wins and the others are cancelled and closed. Empty: one
  /// address at a time (asyncio's default). RFC 8305 recommends 250 ms.
  std::optional<Duration> happy_eyeballs_delay = {};
  /// Reorders the resolved addresses by family (asyncio's interleave): the
  /// first `interleave` of the first family, then one of each family in
  /// turn. 0 = as resolved, unless happy_eyeballs_delay is set, which makes
  /// it 1 (as asyncio). @throws ValueError if negative.
  int interleave = 0;
  /// An already connected stream socket to use instead of connecting
  /// (asyncio's sock=): host must be "" and port 0. On success weft owns the
  /// fd (made non-blocking and close-on-exec; closed with the streams); on
  /// an exception it stays the caller's. The socket options below apply.
  std::optional<int> sock = {};
  /// Bind the socket to this address before connecting (asyncio's
  /// local_addr); addresses `host` resolves to of another family are skipped.
  std::optional<Address> local_addr = {};
  /// TCP_NODELAY (on by default, as asyncio). TCP only.
  bool nodelay = true;
  /// SO_KEEPALIVE.
  bool keepalive = false;
  /// SO_RCVBUF / SO_SNDBUF in bytes; 0 = the kernel's default.
  /// @throws ValueError if negative.
  int recv_buffer_size = 0;
  int send_buffer_size = 0;
  /// TLS: a client context (SslContext::client()); empty = plain TCP.
  std::optional<SslContext> ssl = {};
  /// The name sent in SNI and checked against the certificate. Empty: the
  /// host passed to open_connection (open_unix_connection and sock= need one
  /// when the context checks host names: ValueError otherwise).
  std::string server_hostname = {};
  /// asyncio's defaults: 60 s to finish the handshake, 30 s for a close to
  /// flush its close_notify before the connection is aborted.
  Duration ssl_handshake_timeout = std::chrono::seconds(60);
  Duration ssl_shutdown_timeout = std::chrono::seconds(30);
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
  /// An existing stream socket to serve on instead of binding one (asyncio's
  /// sock=): inherited, passed over a Unix socket, or from systemd socket
  /// activation (see listen_fds()). host must be "" and port 0 (path "" for
  /// start_unix_server). It is listened on with `backlog` if it is not yet
  /// listening; reuse_address and reuse_port do not apply (one listening
  /// socket, on the calling loop). On success weft owns the fd (closed with
  /// the server); on an exception it stays the caller's.
  std::optional<int> sock = {};
  /// TCP_NODELAY on accepted connections (on by default, as asyncio). TCP only.
  bool nodelay = true;
  /// SO_KEEPALIVE on accepted connections (asyncio 3.13's keep_alive).
  bool keepalive = false;
  /// SO_RCVBUF / SO_SNDBUF in bytes, set on the listening socket before
  /// listen() so accepted connections inherit them; 0 = the kernel's
  /// default. @throws ValueError if negative.
  int recv_buffer_size = 0;
  int send_buffer_size = 0;
  /// TLS: a server context with a certificate loaded; empty = plain TCP.
  std::optional<SslContext> ssl = {};
  Duration ssl_handshake_timeout = std::chrono::seconds(60);
  Duration ssl_shutdown_timeout = std::chrono::seconds(30);
};

/// Resolves `host` (an IP literal skips the resolver), then connects to each
/// address in turn until one succeeds (or races them: happy_eyeballs_delay);
/// with options.sock, adopts that socket instead.
/// @throws std::system_error, TimeoutError: when every address failed, the
///         error itself if all failed alike, else one whose message lists
///         each address's error ("Multiple exceptions: ...", as asyncio)
///         with the first one's error code (TimeoutError if all timed out);
///         with sock: ValueError if host or port is also given, the socket
///         is not a stream socket, or a buffer size is negative;
///         std::system_error for a closed fd (EBADF) or an unconnected
///         socket (ENOTCONN).
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectOptions options);
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port);
/// options.sock as for open_connection (path must then be "").
/// @throws std::system_error, ValueError.
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectOptions options);
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path);
/// Listens on every address `host` resolves to ("" = all interfaces, port 0
/// = a free port: see Server::sockets()); with options.sock, on that socket.
/// @throws std::system_error (bind/listen failures name the address; EBADF
///         for a closed sock); ValueError for sock with a host or port, a
///         sock that is not a stream socket, or a negative buffer size.
Coro<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options);
Coro<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port);
/// Listens on a Unix socket path; a stale socket file there is replaced, and
/// the file is removed when the server closes. With options.sock (path ""),
/// serves on that socket and removes no file.
/// @throws std::system_error, ValueError (as start_server).
Coro<Server> start_unix_server(ClientHandler handler, std::string path, ServerOptions options);
Coro<Server> start_unix_server(ClientHandler handler, std::string path);

/// The listening sockets systemd passed to this process (socket activation:
/// LISTEN_PID is this process, LISTEN_FDS of them from fd 3), for
/// ServerOptions::sock; empty when there are none or LISTEN_PID names
/// another process (a child that inherited the variables). The fds are made
/// close-on-exec; the variables are left as they are (changing the
/// environment races with other threads reading it).
/// @throws ValueError if LISTEN_PID or LISTEN_FDS is not a number.
std::vector<int> listen_fds();

}  // namespace weft

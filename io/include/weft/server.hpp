// Server: asyncio.Server, what start_server / start_unix_server return
// (docs/api.md, io).
//
// A Server is a cheap copyable handle. Each accepted connection gets a new
// task running the ClientHandler (unpinned: it may run on any worker); its
// socket is registered with the loop that accepted it.
//
// Accept scaling: with ServerOptions::reuse_port the server opens one
// listening socket per worker (SO_REUSEPORT), each registered with that
// worker's loop, so the kernel spreads connections over the loops. Without
// it there is one listening socket registered with the loop that called
// start_server; that loop accepts every connection and the handler tasks
// spread over the workers by work stealing.
//
// When accept() fails for lack of file descriptors (EMFILE/ENFILE) a listener
// stops accepting for 100 ms instead of spinning on the ready socket.
//
// Threading: every member may be called from any thread. A Server handle
// must not outlive its runtime; a server never closed keeps serving until the
// runtime shuts down, which closes its sockets.
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/detail/handle_access.hpp>

#include <memory>
#include <vector>

namespace weft {

namespace detail {
class ServerState;
}  // namespace detail

class Server {
 public:
  /// Starts serving (if not yet) and waits until close() is called. If the
  /// awaiting task is cancelled the server is closed and the
  /// CancelledError propagates (asyncio's serve_forever).
  /// @throws RuntimeError if the server is already closed or another
  ///         serve_forever is running.
  Coro<void> serve_forever();
  /// Starts accepting (start_server does this unless start_serving = false).
  Coro<void> start_serving();
  bool is_serving() const;
  /// Stops listening and closes the listening sockets (existing connections
  /// stay open, as asyncio: see close_clients()). Idempotent.
  void close();
  /// Closes every connection the server accepted that is still open, as
  /// StreamWriter::close() would: each flushes what is buffered, then closes
  /// its fd; their readers see EOF (asyncio 3.13's Server.close_clients).
  /// Call close() first so that no new connection arrives meanwhile.
  /// Idempotent; connections accepted later are not affected.
  void close_clients();
  /// Like close_clients() but as StreamWriter::abort(): bytes still buffered
  /// are dropped and the fds closed at once (asyncio 3.13's abort_clients).
  void abort_clients();
  /// Completes once the server is closed and every connection it accepted
  /// has been closed.
  Coro<void> wait_closed();
  /// The listening addresses (one per listening socket).
  std::vector<Address> sockets() const;

 private:
  friend struct detail::HandleAccess;
  explicit Server(std::shared_ptr<detail::ServerState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::ServerState> state_;
};

}  // namespace weft

// Server and start_server / start_unix_server.
//
// ServerState protocol:
// - `listeners_` is built before the state is shared and never resized.
//   Each Listener belongs to one loop (its fd is registered there only);
//   its `registered` flag and `backoff` timer are touched only on that loop's
//   thread, and its fd is closed there (run_on_loop), after its registration
//   was removed, so the fd number cannot be reused while the loop watches it.
// - Everything else (serving_, closed_, open_listeners_, active_, waiters) is
//   guarded by mu_. Futures are completed after mu_ is released.
// - Each accepted connection counts in active_ until its transport closes
//   (Transport::on_closed), so wait_closed() waits for the connections too.
// - The listeners' loop callbacks hold the state alive while serving; a
//   Server handle dropped without close() keeps serving (as asyncio) until
//   the loops go away, and ~ServerState then closes the fds (invariant 9).
#include <weft/errors.hpp>
#include <weft/runtime.hpp>
#include <weft/server.hpp>
#include <weft/sock_ops.hpp>
#include <weft/streams.hpp>
#include <weft/task.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "socket_util.hpp"
#include "transport.hpp"

namespace weft {
namespace detail {

namespace {
// accept() calls per readiness report: bounded so one busy listener cannot
// starve the loop's other callbacks.
constexpr int kAcceptBatch = 64;
// Back-off after EMFILE/ENFILE: stop accepting this long instead of spinning.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
}  // namespace

class ServerState : public std::enable_shared_from_this<ServerState> {
 public:
  struct Listener {
    int fd;
    EventLoop* loop;
    Address address;
    int family;
    bool registered = false;  // loop-only
    TimerHandle backoff;      // loop-only
  };

  ServerState(ClientHandler handler, const ServerOptions& options, SocketTuning tuning,
              std::vector<Listener> listeners, std::string unix_path)
      : handler_(std::move(handler)),
        limit_(options.limit),
        tuning_(tuning),
        ssl_(options.ssl),
        ssl_handshake_timeout_(options.ssl_handshake_timeout),
        ssl_shutdown_timeout_(options.ssl_shutdown_timeout),
        listeners_(std::move(listeners)),
        unix_path_(std::move(unix_path)),
        open_listeners_(listeners_.size()),
        fd_closed_(listeners_.size(), false) {}

  ~ServerState() {
    // Only reached with listeners open when their loops went away first, or
    // when close() queued close_listener on a loop that was torn down before
    // running it (the discarded callback held the last reference): the fd
    // leaked there before, found by shutdown_stress_test. No loop watches
    // the fd any more either way.
    for (std::size_t i = 0; i < listeners_.size(); ++i) close_fd(i);
  }

  /// Closes listener i's fd unless that was done already (any thread).
  void close_fd(std::size_t i) {
    {
      std::lock_guard lock(mu_);
      if (fd_closed_[i]) return;
      fd_closed_[i] = true;
    }
    ::close(listeners_[i].fd);
  }

  void start_serving() {
    {
      std::lock_guard lock(mu_);
      if (serving_ || closed_) return;
      serving_ = true;
    }
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      run_on_loop(*listeners_[i].loop, [self = shared_from_this(), i] { self->arm(i); });
  }

  bool is_serving() const {
    std::lock_guard lock(mu_);
    return serving_;
  }

  /// Closes (abort = false: flushing first) or aborts every open connection.
  void close_clients(bool abort) {
    std::vector<std::shared_ptr<Transport>> clients;
    {
      std::lock_guard lock(mu_);
      clients.reserve(clients_.size());
      for (auto& [key, weak] : clients_)
        if (auto t = weak.lock()) clients.push_back(std::move(t));
    }
    // Unlocked: an already closed transport runs its close hook (which takes
    // mu_) from inside close().
    for (auto& t : clients) abort ? t->abort() : t->close();
  }

  void close() {
    std::optional<Future<void>> forever;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = true;
      serving_ = false;
      forever = std::exchange(forever_, std::nullopt);
    }
    for (std::size_t i = 0; i < listeners_.size(); ++i) {
      auto self = shared_from_this();
      if (!run_on_loop(*listeners_[i].loop, [self, i] { self->close_listener(i); })) {
        close_fd(i);
        listener_closed();
      }
    }
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
    if (forever) detail::FutureAccess::state(*forever)->set_value();
  }

  Coro<void> wait_closed() {
    std::optional<Future<void>> wait;
    {
      std::lock_guard lock(mu_);
      if (!(closed_ && open_listeners_ == 0 && active_ == 0)) {
        wait.emplace();
        closed_waiters_.push_back(*wait);
      }
    }
    if (wait) co_await std::move(*wait);
  }

  /// Registers the serve_forever future. @throws RuntimeError.
  Future<void> begin_forever() {
    std::lock_guard lock(mu_);
    if (closed_) throw RuntimeError("serve_forever: server is closed");
    if (forever_ && !forever_->done())
      throw RuntimeError("server is already being awaited on serve_forever()");
    forever_.emplace();
    return *forever_;
  }

  std::vector<Address> sockets() const {
    std::lock_guard lock(mu_);
    std::vector<Address> out;
    if (closed_) return out;
    for (const Listener& l : listeners_) out.push_back(l.address);
    return out;
  }

 private:
  // --- on the listener's loop ---
  void arm(std::size_t i) {
    Listener& l = listeners_[i];
    {
      std::lock_guard lock(mu_);
      if (closed_ || !serving_) return;
    }
    if (l.registered) return;
    l.loop->add_reader(l.fd, [self = shared_from_this(), i] { self->on_accept(i); });
    l.registered = true;
  }

  void close_listener(std::size_t i) {
    Listener& l = listeners_[i];
    l.backoff.cancel();
    // The back-off timer's callback holds this state: dropping the handle
    // breaks that cycle (a server that once paused its accepts leaked).
    l.backoff = TimerHandle();
    if (l.registered) l.loop->remove_reader(l.fd);
    l.registered = false;
    close_fd(i);
    listener_closed();
  }

  void on_accept(std::size_t i) {
    Listener& l = listeners_[i];
    if (!l.registered) return;
    for (int n = 0; n < kAcceptBatch; ++n) {
      int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        serve_connection(fd, l.family);
        // An eagerly started handler may have closed the server already.
        if (!l.registered) return;
        continue;
      }
      int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of descriptors: the listener stays readable, so keep polling it
        // and the loop spins. Pause accepting and try again later.
        l.loop->remove_reader(l.fd);
        l.registered = false;
        l.backoff =
            l.loop->call_later(kAcceptBackoff, [self = shared_from_this(), i] { self->arm(i); });
      }
      l.loop->call_exception_handler({"accept failed on " + l.address.to_string() +
                                          (l.registered ? "" : "; pausing accepts for 100 ms"),
                                      std::make_exception_ptr(os_error(err, "accept")),
                                      std::nullopt, std::nullopt});
      return;
    }
  }

  void serve_connection(int fd, int family) {
    std::shared_ptr<Transport> t;
    try {
      // Buffer sizes came with the listener; the rest is set per connection.
      SocketTuning per_connection = tuning_;
      per_connection.recv_buffer_size = per_connection.send_buffer_size = 0;
      try {
        apply_tuning(fd, family, per_connection, "accepted connection");
      } catch (...) {
        ::close(fd);  // make_transport below closes it itself when it fails
        throw;
      }
      t = make_transport(fd, FdKind::socket, true, true, limit_);
    } catch (const std::exception& e) {
      get_running_loop().call_exception_handler({"could not set up an accepted connection",
                                                 std::current_exception(), std::nullopt,
                                                 std::nullopt});
      return;
    }
    {
      std::lock_guard lock(mu_);
      ++active_;
      clients_.emplace(t.get(), t);
    }
    t->on_closed([self = shared_from_this(), key = t.get()] { self->connection_closed(key); });
    auto owner = std::make_shared<StreamOwner>(t);
    create_task(run_handler(shared_from_this(), std::move(t), std::move(owner)));
  }

  static Coro<void> run_handler(std::shared_ptr<ServerState> self, std::shared_ptr<Transport> t,
                                std::shared_ptr<StreamOwner> owner) {
    if (self->ssl_) {
      try {
        co_await tls_handshake(t, HandleAccess::state(*self->ssl_), true, {},
                               self->ssl_handshake_timeout_, self->ssl_shutdown_timeout_);
      } catch (const std::exception&) {
        // As asyncio (outside debug mode), a failed handshake is not
        // reported: tls_handshake closed the connection.
        co_return;
      }
    }
    StreamReader reader = HandleAccess::make<StreamReader>(t->reader(), owner);
    StreamWriter writer = HandleAccess::make<StreamWriter>(t, owner);
    owner.reset();
    t.reset();
    try {
      co_await self->handler_(reader, writer);
    } catch (const std::exception&) {
      // asyncio logs an exception escaping client_connected_cb and closes the connection.
      get_running_loop().call_exception_handler({"Unhandled exception in client connection handler",
                                                 std::current_exception(), std::nullopt,
                                                 std::nullopt});
      writer.close();
    }
  }

  // --- any thread ---
  void listener_closed() {
    std::vector<Future<void>> waiters;
    {
      std::lock_guard lock(mu_);
      --open_listeners_;
      take_closed_waiters_locked(waiters);
    }
    for (auto& w : waiters) detail::FutureAccess::state(w)->set_value();
  }

  void connection_closed(const Transport* key) {
    std::vector<Future<void>> waiters;
    {
      std::lock_guard lock(mu_);
      --active_;
      clients_.erase(key);
      take_closed_waiters_locked(waiters);
    }
    for (auto& w : waiters) detail::FutureAccess::state(w)->set_value();
  }

  void take_closed_waiters_locked(std::vector<Future<void>>& out) {
    if (closed_ && open_listeners_ == 0 && active_ == 0) out.swap(closed_waiters_);
  }

  const ClientHandler handler_;
  const std::size_t limit_;
  const SocketTuning tuning_;
  const std::optional<SslContext> ssl_;
  const Duration ssl_handshake_timeout_;
  const Duration ssl_shutdown_timeout_;
  std::vector<Listener> listeners_;
  const std::string unix_path_;

  mutable std::mutex mu_;
  bool serving_ = false;         // guarded by mu_
  bool closed_ = false;          // guarded by mu_
  std::size_t open_listeners_;   // guarded by mu_
  std::vector<bool> fd_closed_;  // guarded by mu_: listener i's fd was closed
  std::size_t active_ = 0;       // guarded by mu_
  std::unordered_map<const Transport*, std::weak_ptr<Transport>> clients_;  // guarded by mu_
  std::vector<Future<void>> closed_waiters_;                                // guarded by mu_
  std::optional<Future<void>> forever_;                                     // guarded by mu_
};

namespace {

SocketTuning tuning_of(const ServerOptions& o) {
  return {o.nodelay, o.keepalive, o.recv_buffer_size, o.send_buffer_size};
}

// Buffer sizes on the listener, before listen(): accepted connections
// inherit them, and the window scale they offer depends on them.
void tune_listener(int fd, const ServerOptions& options, const std::string& where) {
  SocketTuning buffers;
  buffers.recv_buffer_size = options.recv_buffer_size;
  buffers.send_buffer_size = options.send_buffer_size;
  apply_tuning(fd, AF_UNIX, buffers, where);  // AF_UNIX: no TCP_NODELAY on a listener
}

int open_listener(const Address& address, const ServerOptions& options, bool reuse_port) {
  int fd = make_socket(address.family(), SOCK_STREAM);
  try {
    tune_listener(fd, options, "listen on " + address.to_string());
  } catch (...) {
    ::close(fd);
    throw;
  }
  int one = 1;
  if (address.family() != AF_UNIX) {
    if (options.reuse_address) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      int err = errno;
      ::close(fd);
      throw_os_error(err, "setsockopt(SO_REUSEPORT) on " + address.to_string());
    }
    // Like asyncio: an IPv6 listener does not also take the IPv4 port.
    if (address.family() == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, address.sockaddr_ptr(), address.length()) < 0) {
    int err = errno;
    ::close(fd);
    throw_os_error(err, "error while attempting to bind on address " + address.to_string());
  }
  if (::listen(fd, options.backlog) < 0) {
    int err = errno;
    ::close(fd);
    throw_os_error(err, "listen on " + address.to_string());
  }
  return fd;
}

Server make_server(ClientHandler handler, const ServerOptions& options,
                   std::vector<ServerState::Listener> listeners, std::string unix_path) {
  auto state = std::make_shared<ServerState>(std::move(handler), options, tuning_of(options),
                                             std::move(listeners), std::move(unix_path));
  if (options.start_serving) state->start_serving();
  return detail::HandleAccess::make<Server>(state);
}

// Serves on options.sock (asyncio's sock=): checks first, so that the caller
// still owns the fd if anything is wrong.
Server adopt_server(ClientHandler handler, const ServerOptions& options, const char* where) {
  const int fd = *options.sock;
  const std::string what = std::string(where) + " sock=" + std::to_string(fd);
  const int family = check_stream_socket(fd, what);
  tune_listener(fd, options, what);
  int listening = 0;
  socklen_t len = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
    throw_os_error(errno, what);
  if (!listening && ::listen(fd, options.backlog) < 0) throw_os_error(errno, what + ": listen");
  adopt_fd(fd, what);
  std::vector<ServerState::Listener> listeners;
  listeners.push_back(
      {fd, &get_running_loop(), local_address(fd).value_or(Address()), family, false, {}});
  return make_server(std::move(handler), options, std::move(listeners), {});
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------------- Server

Coro<void> Server::serve_forever() {
  std::shared_ptr<detail::ServerState> state = state_;
  Future<void> forever = state->begin_forever();
  state->start_serving();
  bool cancelled = false;
  CancelledError error;
  try {
    co_await forever;
  } catch (const CancelledError& e) {
    cancelled = true;
    error = e;
  }
  if (cancelled) {
    state->close();
    throw error;
  }
}

Coro<void> Server::start_serving() {
  state_->start_serving();
  co_return;
}

bool Server::is_serving() const { return state_->is_serving(); }
void Server::close() { state_->close(); }
void Server::close_clients() { state_->close_clients(false); }
void Server::abort_clients() { state_->close_clients(true); }
Coro<void> Server::wait_closed() {
  std::shared_ptr<detail::ServerState> state = state_;
  co_await state->wait_closed();
}
std::vector<Address> Server::sockets() const { return state_->sockets(); }

// ------------------------------------------------------------- start_server

Coro<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options) {
  if (!handler) throw ValueError("start_server: empty handler");
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  if (options.ssl && !options.ssl->is_server())
    throw ValueError("start_server: ssl must be a server context (SslContext::server())");
  detail::check_tuning(detail::tuning_of(options), "start_server");
  if (options.sock) {
    if (!host.empty() || port != 0)
      throw ValueError("start_server: host/port and sock can not be specified at the same time");
    co_return detail::adopt_server(std::move(handler), options, "start_server");
  }
  EventLoop& loop = get_running_loop();
  std::vector<Address> addresses;
  try {
    addresses.push_back(Address::ip(host, port));  // IP literals skip the resolver
  } catch (const ValueError&) {
  }
  if (addresses.empty()) {
    std::vector<AddrInfo> infos =
        co_await weft::getaddrinfo(loop, host, std::to_string(port), AF_UNSPEC, SOCK_STREAM);
    for (const AddrInfo& info : infos)
      if (std::find(addresses.begin(), addresses.end(), info.address) == addresses.end())
        addresses.push_back(info.address);
  }
  std::vector<EventLoop*> loops =
      options.reuse_port ? detail::running_loops() : std::vector<EventLoop*>{&get_running_loop()};
  std::vector<detail::ServerState::Listener> listeners;
  try {
    for (Address address : addresses) {
      for (EventLoop* target : loops) {
        int fd = detail::open_listener(address, options, options.reuse_port);
        Address bound = detail::local_address(fd).value_or(address);
        // With port 0, the other per-worker sockets must join the port the first one got.
        address = bound;
        listeners.push_back({fd, target, bound, address.family(), false, {}});
      }
    }
  } catch (...) {
    for (auto& l : listeners) ::close(l.fd);
    throw;
  }
  co_return detail::make_server(std::move(handler), options, std::move(listeners), {});
}

Coro<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port) {
  return start_server(std::move(handler), std::move(host), port, ServerOptions());
}

Coro<Server> start_unix_server(ClientHandler handler, std::string path) {
  return start_unix_server(std::move(handler), std::move(path), ServerOptions());
}

Coro<Server> start_unix_server(ClientHandler handler, std::string path, ServerOptions options) {
  if (!handler) throw ValueError("start_unix_server: empty handler");
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  if (options.ssl && !options.ssl->is_server())
    throw ValueError("start_unix_server: ssl must be a server context (SslContext::server())");
  detail::check_tuning(detail::tuning_of(options), "start_unix_server");
  if (options.sock) {
    if (!path.empty())
      throw ValueError("start_unix_server: path and sock can not be specified at the same time");
    co_return detail::adopt_server(std::move(handler), options, "start_unix_server");
  }
  Address address = Address::unix_path(path);
  if (!path.empty() && path.front() != '@' && path.front() != '\0') {
    // Like asyncio: a stale socket file from an earlier run is replaced.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  }
  int fd = detail::open_listener(address, options, false);
  std::vector<detail::ServerState::Listener> listeners;
  listeners.push_back({fd, &get_running_loop(), address, AF_UNIX, false, {}});
  bool named = !path.empty() && path.front() != '@' && path.front() != '\0';
  co_return detail::make_server(std::move(handler), options, std::move(listeners),
                                named ? path : std::string());
}

std::vector<int> listen_fds() {
  // sd_listen_fds(3): fds SD_LISTEN_FDS_START (3) .. 3 + LISTEN_FDS - 1,
  // meant for the process LISTEN_PID names.
  const char* pid_text = std::getenv("LISTEN_PID");
  const char* count_text = std::getenv("LISTEN_FDS");
  if (!pid_text || !count_text) return {};
  auto number = [](const char* text, const char* name) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > 1 << 20)
      throw ValueError(std::string("listen_fds: ") + name + " is not a valid number: \"" + text +
                       "\"");
    return v;
  };
  const long pid = number(pid_text, "LISTEN_PID");
  const long count = number(count_text, "LISTEN_FDS");
  if (pid != static_cast<long>(::getpid())) return {};
  constexpr int kFirst = 3;
  std::vector<int> fds;
  for (long i = 0; i < count; ++i) {
    const int fd = kFirst + static_cast<int>(i);
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
      detail::throw_os_error(errno, "listen_fds: fd " + std::to_string(fd));
    fds.push_back(fd);
  }
  return fds;
}

}  // namespace weft

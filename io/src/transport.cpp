// Transport's core and StreamWriter: one fd's buffering, flow control, TLS
// and close, over the backend that does its I/O (transport_epoll.cpp,
// transport_uring.cpp). The threading protocol is described in
// transport.hpp; in short: registration changes, ring requests and close(fd)
// happen on the fd's loop, everything shared is under mu_, and futures are
// completed unlocked.
#include "transport.hpp"
#include "transport_uring.hpp"

#include <weft/detail/loop_reactor.hpp>
#include <weft/errors.hpp>
#include <weft/reactor/selector.hpp>
#include <weft/stream_writer.hpp>

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <mutex>

#include "socket_util.hpp"
#include "tls_engine.hpp"

namespace weft {
namespace detail {

void complete_all(std::vector<Future<void>>& waiters) {
  for (Future<void>& w : waiters)
    detail::FutureAccess::state(w)->set_value();  // no-op if cancelled
  waiters.clear();
}

Transport::Transport(EventLoop& loop, int fd, FdKind kind, bool readable, bool writable,
                     std::size_t limit, IoRing* ring)
    : loop_(&loop),
      fd_(fd),
      kind_(kind),
      readable_(readable),
      writable_(writable),
      batch_on_loop_(kind == FdKind::socket && ring),
      reader_(std::make_shared<ReaderState>(limit)),
      io_(batch_on_loop_ ? make_uring_io(*this, *ring) : make_epoll_io(*this)),
      high_(kDefaultHighWater),
      low_(kDefaultHighWater / 4) {
  if (kind == FdKind::socket) {
    peer_ = peer_address(fd);
    local_ = local_address(fd);
  } else if (writable) {
    ignore_sigpipe_once();
  }
}

Transport::~Transport() {
  // The engine goes first: it only refers to this transport.
  tls_owner_.reset();
  // Reached with the fd open only when its loop went away first (its
  // registrations or ring requests, which held us, were dropped with it) or
  // start() never ran.
  if (!fd_closed_) ::close(fd_);
}

void Transport::start() {
  if (!readable_) return;
  reader_->attach(weak_from_this());
  run_on_loop(*loop_, [self = shared_from_this()] { self->arm_reader(); });
}

// ------------------------------------------------------------------ loop side

void Transport::arm_reader() {
  // closed_ is written only on this thread, so reading it unlocked here is safe.
  if (closed_ || reading_ || reader_eof_) return;
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
  }
  try {
    io_->start_reading();
  } catch (...) {
    return teardown(std::current_exception());  // nothing can be read
  }
  reading_ = true;
}

void Transport::pause_reading() {
  if (!reading_) return;
  io_->stop_reading();
  reading_ = false;
}

std::string Transport::op_name(const char* verb, const char* without_peer) const {
  return peer_ ? std::string(verb) + " " + peer_->to_string() : std::string(without_peer);
}

// ------------------------------------------------------------ loop side

bool Transport::deliver(std::string_view data) {
  if (TlsEngine* tls = this->tls()) return tls->on_data(data);
  return reader_->feed_data(data);
}

void Transport::deliver_eof() {
  if (TlsEngine* tls = this->tls()) return tls->on_eof();
  reader_->feed_eof();
}

void Transport::close_on_loop() {
  bool flush;
  try {
    pause_reading();
    std::lock_guard lock(mu_);
    if (closed_) return;
    // A sendfile in progress is flushed too: its end calls us again.
    if (sendfile_active_ && !error_) return;
    flush = pending_locked() > 0 && !error_;
    if (flush) io_->flush_for_close_locked();
  } catch (...) {
    return teardown(std::current_exception());
  }
  // With bytes still buffered the backend's flush finishes the close.
  if (!flush) teardown(nullptr);
}

void Transport::teardown(std::exception_ptr error) {
  std::vector<Future<void>> waiters;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    closing_ = true;
    if (error && !error_) error_ = error;
    take_waiters_locked(waiters);
    take_empty_waiters_locked(waiters);
    // A sendfile waiting for room must wake (and see closed_) before the fd
    // can be closed: finish_close waits for it.
    if (sendfile_active_) ::shutdown(fd_, SHUT_RDWR);
    wbuf_.clear();
    if (!send_active_)
      sending_.clear();  // else the kernel still reads them: cleared by the completion
  }
  close_error_ = error;
  io_->cancel();
  reading_ = false;
  if (readable_) {
    if (error)
      reader_->set_exception(error);
    else if (!reader_eof_)
      reader_->feed_eof();
  }
  complete_all(waiters);
  if (TlsEngine* tls = this->tls()) tls->on_closed(error);
  if (io_->idle()) finish_close();
}

void Transport::finish_close() {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(mu_);
    if (sendfile_active_) {  // its sendfile(2) calls use the fd: end_sendfile closes it
      close_after_sendfile_ = true;
      return;
    }
  }
  shutdown_timer_.cancel();
  ::close(fd_);
  fd_closed_ = true;
  {
    std::lock_guard lock(mu_);
    hooks.swap(on_closed_);
    hooks_ran_ = true;
  }
  const std::exception_ptr& error = close_error_;
  if (error) {
    detail::FutureAccess::state(closed_future_)->set_exception_ptr(error);
    // Marks it retrieved: only wait_closed() callers should see it (asyncio
    // silences the close future the same way).
    (void)detail::FutureAccess::state(closed_future_)->exception();
  } else {
    detail::FutureAccess::state(closed_future_)->set_value();
  }
  for (auto& hook : hooks) {
    try {
      hook();
    } catch (...) {
      loop_->call_exception_handler({"exception in a connection's close hook",
                                     std::current_exception(), std::nullopt, std::nullopt});
    }
  }
}

void Transport::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(mu_);
    if (!error_) error_ = error;
    closing_ = true;
  }
  // Under TLS the caller may be the engine, holding its lock: teardown calls
  // into the engine (on_closed), so it must not run inline there.
  if (tls()) {
    try {
      loop_->call_soon([self = shared_from_this(), error] { self->teardown(error); });
    } catch (...) {
      // The loop is closed: its connections go with it.
    }
    return;
  }
  run_on_loop(*loop_, [self = shared_from_this(), error] { self->teardown(error); });
}

// ------------------------------------------------------------- any thread

ssize_t Transport::send_iov(const ::iovec* iov, int count) {
  ::msghdr msg{};
  msg.msg_iov = const_cast<::iovec*>(iov);
  msg.msg_iovlen = static_cast<std::size_t>(count);
  for (;;) {
    ssize_t n = kind_ == FdKind::socket ? ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)
                                        : ::writev(fd_, iov, count);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

void Transport::write(std::span<const std::string_view> pieces, WriteChunk* owned) {
  if (!writable_) throw RuntimeError("write: this stream is not writable");
  if (TlsEngine* tls = this->tls()) return tls->write(pieces);  // owned bytes are encrypted: copied
  write_plain(pieces, owned);
}

void Transport::raw_write(std::string_view data) { write_plain({&data, 1}, nullptr); }

void Transport::raw_write(std::string&& data) {
  WriteChunk chunk;
  chunk.str = std::move(data);
  chunk.ours = true;
  // write_plain reads the view only before it moves the chunk.
  const std::string_view view(chunk.str);
  write_plain({&view, 1}, &chunk);
}

void Transport::write_plain(std::span<const std::string_view> pieces, WriteChunk* owned) {
  std::exception_ptr error;
  bool flush = false;
  {
    std::lock_guard lock(mu_);
    if (eof_requested_) throw RuntimeError("Cannot call write() after write_eof()");
    if (sendfile_active_) throw RuntimeError("unable to write; sendfile is in progress");
    if (closing_ || closed_ || error_) return;
    std::size_t total = 0;
    for (std::string_view p : pieces) total += p.size();
    if (total == 0) return;
    // With a ring, a write on the loop's thread joins the iteration's batch
    // of sends; one from elsewhere sends at once when nothing is queued.
    const bool on_loop = batch_on_loop_ && current_loop() == loop_;
    std::size_t sent = 0;
    if (pending_locked() == 0 && !on_loop) {
      std::array<::iovec, WriteQueue::kMaxIov> iov;
      int count = 0;
      for (std::string_view p : pieces) {
        if (p.empty()) continue;
        if (count == WriteQueue::kMaxIov) break;  // the rest is queued
        iov[count].iov_base = const_cast<char*>(p.data());
        iov[count].iov_len = p.size();
        ++count;
      }
      ssize_t n = send_iov(iov.data(), count);
      if (n == static_cast<ssize_t>(total)) return;
      if (n == -EAGAIN) {
        n = 0;
      } else if (n < 0) {
        std::string op = op_name("send to", "write");
        error = std::make_exception_ptr(os_error(static_cast<int>(-n), op));
      }
      if (!error) sent = static_cast<std::size_t>(n);
    }
    if (!error) {
      // Queue what the kernel did not take: moved in where the caller gave
      // up the bytes, copied otherwise. Only the first piece queued can be
      // partly sent, and the queue was empty then (WriteQueue::push).
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        const std::size_t size = pieces[i].size();
        if (sent >= size) {
          sent -= size;
          continue;
        }
        if (owned)
          wbuf_.push(std::move(owned[i]), sent);
        else
          wbuf_.append_copy(pieces[i].substr(sent));
        sent = 0;
      }
      if (on_loop) {
        // io_uring on the loop's thread: joins this iteration's batch of sends.
        try {
          static_cast<UringIo&>(*io_).send_locked();
        } catch (...) {
          error = std::current_exception();
        }
      } else if (!send_active_ && !flush_queued_) {
        // Else the running send's completion, or the queued flush, takes
        // these bytes along.
        flush = flush_queued_ = true;
      }
    }
  }
  if (error) return fail(error);
  if (flush) run_on_loop(*loop_, [self = shared_from_this()] { self->io_->flush(); });
}

Coro<void> Transport::drain(std::shared_ptr<Transport> self) {
  for (;;) {
    std::optional<Future<void>> wait;
    {
      std::lock_guard lock(self->mu_);
      if (self->error_) std::rethrow_exception(self->error_);
      if (self->closing_ || self->closed_)
        throw os_error(ECONNRESET,
                       "drain: the connection is closed (" +
                           (self->peer_ ? self->peer_->to_string() : std::string("fd")) + ")");
      if (self->pending_locked() <= self->high_) co_return;
      std::erase_if(self->drain_waiters_, [](const Future<void>& f) { return f.done(); });
      wait.emplace();
      self->drain_waiters_.push_back(*wait);
    }
    co_await std::move(*wait);
  }
}

void Transport::write_eof() {
  if (TlsEngine* tls = this->tls()) tls->write_eof();  // close_notify, then the FIN
  bool close_pipe = false;
  {
    std::lock_guard lock(mu_);
    if (closing_ || closed_ || eof_requested_) return;
    eof_requested_ = true;
    if (sendfile_active_) return;  // end_sendfile sends it
    if (kind_ == FdKind::pipe) {
      close_pipe = true;
    } else if (pending_locked() == 0) {
      ::shutdown(fd_, SHUT_WR);
      eof_sent_ = true;
    }
  }
  if (close_pipe) close();
}

void Transport::close() {
  TlsEngine* tls = this->tls();
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
  }
  // close_notify goes out with the rest of the buffer (before closing_ is
  // set, which makes raw_write drop bytes).
  if (tls) tls->close_notify();
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
    closing_ = true;
  }
  run_on_loop(*loop_, [self = shared_from_this(), tls] {
    self->close_on_loop();
    // A peer that stops reading would keep a TLS close waiting for the flush
    // forever: ssl_shutdown_timeout bounds it (asyncio's), then the
    // connection is aborted.
    if (tls && !self->closed_) {
      std::weak_ptr<Transport> weak = self;
      Duration timeout = self->tls_shutdown_timeout_;
      self->shutdown_timer_ = self->loop_->call_later(timeout, [weak, timeout] {
        if (std::shared_ptr<Transport> t = weak.lock())
          t->teardown(std::make_exception_ptr(TimeoutError(
              t->op_name("TLS shutdown with", "TLS shutdown") + ": timed out after " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
              " ms; the connection was aborted")));
      });
    }
  });
}

TlsEngine& Transport::attach_tls(std::shared_ptr<SslContextState> ctx, bool server_side,
                                 std::string server_hostname, Duration shutdown_timeout) {
  TlsEngine* engine;
  {
    std::lock_guard lock(mu_);
    if (tls_owner_) throw RuntimeError("start_tls: the connection already uses TLS");
    if (closing_ || closed_) throw RuntimeError("start_tls: the connection is closed");
    tls_shutdown_timeout_ = shutdown_timeout;
    tls_owner_ =
        std::make_unique<TlsEngine>(*this, std::move(ctx), server_side, std::move(server_hostname));
    engine = tls_owner_.get();
  }
  tls_.store(engine, std::memory_order_release);
  std::string early = reader_->take_buffered();
  engine->start();
  if (!early.empty()) {
    if (engine->on_data(early)) pause_reading();  // the reader asked to pause until it drains
  }
  return *engine;
}

void Transport::abort() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closing_ = true;
  }
  // teardown discards wbuf_ (and cancels a send in flight): abort's contract.
  run_on_loop(*loop_, [self = shared_from_this()] { self->teardown(nullptr); });
}

bool Transport::is_closing() const {
  std::lock_guard lock(mu_);
  return closing_;
}

namespace {
Coro<void> await_closed(Future<void> closed) { co_await closed; }
}  // namespace

Coro<void> Transport::wait_closed() { return await_closed(closed_future_); }

std::size_t Transport::buffered() const {
  std::lock_guard lock(mu_);
  return closed_ ? 0 : pending_locked();  // a send in flight at teardown is not ours any more
}

void Transport::set_limits(std::size_t high, std::size_t low) {
  if (low > high) throw ValueError("high must be >= low");
  std::vector<Future<void>> waiters;
  {
    std::lock_guard lock(mu_);
    high_ = high;
    low_ = low;
    if (pending_locked() <= low_) waiters.swap(drain_waiters_);
  }
  complete_all(waiters);
}

int Transport::fileno() const {
  std::lock_guard lock(mu_);
  return closed_ ? -1 : fd_;
}

void Transport::on_closed(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (!hooks_ran_) {
      on_closed_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

void Transport::resume_reading() {
  run_on_loop(*loop_, [self = shared_from_this()] { self->arm_reader(); });
}

std::shared_ptr<Transport> make_transport(int fd, FdKind kind, bool readable, bool writable,
                                          std::size_t limit) {
  EventLoop& loop = get_running_loop();
  std::shared_ptr<Transport> t;
  try {
    IoRing* ring = kind == FdKind::socket ? detail::loop_selector(loop).io_ring() : nullptr;
    t = std::make_shared<Transport>(loop, fd, kind, readable, writable, limit, ring);
  } catch (...) {
    ::close(fd);
    throw;
  }
  t->start();
  return t;
}

std::pair<StreamReader, StreamWriter> make_fd_streams(int fd, FdKind kind, std::size_t limit) {
  if (limit == 0) throw ValueError("Limit cannot be <= 0");
  auto t = make_transport(fd, kind, true, true, limit);
  auto owner = std::make_shared<StreamOwner>(t);
  return {HandleAccess::make<StreamReader>(t->reader(), owner),
          HandleAccess::make<StreamWriter>(t, owner)};
}

StreamReader make_pipe_reader(int fd, std::size_t limit) {
  if (limit == 0) throw ValueError("Limit cannot be <= 0");
  auto t = make_transport(fd, FdKind::pipe, true, false, limit);
  return HandleAccess::make<StreamReader>(t->reader(), std::make_shared<StreamOwner>(t));
}

StreamWriter make_pipe_writer(int fd) {
  auto t = make_transport(fd, FdKind::pipe, false, true, kDefaultStreamLimit);
  return HandleAccess::make<StreamWriter>(t, std::make_shared<StreamOwner>(t));
}

}  // namespace detail

// ---------------------------------------------------------------- StreamWriter

StreamWriter::StreamWriter(std::shared_ptr<detail::Transport> transport,
                           std::shared_ptr<detail::StreamOwner> owner)
    : transport_(std::move(transport)), owner_(std::move(owner)) {}

void StreamWriter::write(std::string_view data) { transport_->write({&data, 1}, nullptr); }
void StreamWriter::write(const char* data) { write(std::string_view(data)); }
void StreamWriter::write(std::string&& data) {
  detail::WriteChunk chunk;
  chunk.str = std::move(data);
  const std::string_view view(chunk.str);
  transport_->write({&view, 1}, &chunk);
}
void StreamWriter::write(std::vector<std::byte>&& data) {
  detail::WriteChunk chunk;
  chunk.bytes = std::move(data);
  chunk.is_bytes = true;
  const std::string_view view(chunk.data(), chunk.size());
  transport_->write({&view, 1}, &chunk);
}
void StreamWriter::writelines(const std::vector<std::string>& lines) {
  std::vector<std::string_view> views(lines.begin(), lines.end());
  transport_->write(views, nullptr);
}
void StreamWriter::writelines(std::vector<std::string>&& lines) {
  std::vector<detail::WriteChunk> chunks(lines.size());
  std::vector<std::string_view> views;
  views.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    chunks[i].str = std::move(lines[i]);
    views.emplace_back(chunks[i].str);
  }
  transport_->write(views, chunks.data());
}
Coro<void> StreamWriter::drain() { return detail::Transport::drain(transport_); }
bool StreamWriter::can_write_eof() const { return transport_->kind() == detail::FdKind::socket; }
void StreamWriter::write_eof() { transport_->write_eof(); }
void StreamWriter::close() { transport_->close(); }
void StreamWriter::abort() { transport_->abort(); }
bool StreamWriter::is_closing() const { return transport_->is_closing(); }
Coro<void> StreamWriter::wait_closed() { return transport_->wait_closed(); }
std::size_t StreamWriter::buffered() const { return transport_->buffered(); }
void StreamWriter::set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low) {
  transport_->set_limits(high, low.value_or(high / 4));
}
std::optional<Address> StreamWriter::peername() const { return transport_->peername(); }
std::optional<Address> StreamWriter::sockname() const { return transport_->sockname(); }
int StreamWriter::fileno() const { return transport_->fileno(); }

std::optional<TlsInfo> StreamWriter::tls_info() const {
  if (detail::TlsEngine* tls = transport_->tls()) return tls->info();
  return std::nullopt;
}

Coro<void> StreamWriter::start_tls(SslContext ctx, std::string server_hostname,
                                   Duration handshake_timeout, Duration shutdown_timeout) {
  std::shared_ptr<detail::Transport> t = transport_;
  if (t->kind() != detail::FdKind::socket) throw ValueError("start_tls: not a socket");
  if (!ctx.is_server() && ctx.check_hostname() && server_hostname.empty())
    throw ValueError("start_tls: server_hostname is required when the context checks host names");
  co_await detail::Transport::drain(t);
  co_await detail::tls_handshake(t, detail::HandleAccess::state(ctx), ctx.is_server(),
                                 std::move(server_hostname), handshake_timeout, shutdown_timeout);
}

}  // namespace weft

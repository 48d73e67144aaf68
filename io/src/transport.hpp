// ReaderState and Transport: the shared state behind StreamReader and
// StreamWriter (internal).
//
// A Transport is one buffering and flow-control core (this header,
// transport.cpp) over one of two I/O backends (TransportIo), fixed at
// construction: epoll (transport_epoll.cpp: pipes, and sockets where
// io_uring is unavailable) or io_uring (transport_uring.cpp: sockets on a
// loop whose selector has an IoRing). Each backend's file opens with its own
// invariants. The TLS engine sits in the core: it sees plain bytes in and
// out, whichever backend moves them.
//
// Ownership and threads:
// - A Transport owns one fd, registered with exactly one loop (`loop_`, the
//   running loop when it was created; docs/architecture.md, invariant 6). Every
//   selector registration change, every ring request and the final close(fd)
//   happen on that loop's thread (run_on_loop); a call from elsewhere is
//   queued there. Because the fd is closed on its loop's thread after its
//   registrations were removed and its requests completed there, an fd number
//   can never be reused while a loop still watches it or the kernel still
//   works on it.
// - Fields marked "loop-only" are touched only on loop_'s thread; every other
//   field is guarded by mu_. No lock is held while calling into the loop or
//   completing a future, and mu_ and ReaderState::mu_ are never held together.
// - The loop's fd callbacks and outstanding ring requests hold a shared_ptr
//   to the Transport, so it lives while registered; the user-facing handles
//   hold a StreamOwner, whose destruction (the last reader/writer handle
//   dropped) closes the transport. If the loop itself goes away first, its
//   registrations are released and ~Transport closes the fd (invariant 9).
// - Flow control: the backend reads into the ReaderState (or the TLS engine)
//   while reading_; ReaderState asks to pause above 2 * limit (the backend
//   stops reading) and to resume at or below limit (asyncio's StreamReader).
//   Writes: bytes the kernel did not take at once wait in wbuf_ (then in
//   sending_ while a ring send holds them); drain() waits while more than the
//   high-water mark is pending and wakes at or below the low one; close()
//   flushes first, abort() does not. One function (sent_locked) decides,
//   after every flush step of either backend, what a shrinking buffer
//   releases: drain waiters, the FIN that write_eof asked for, a close.
// - Writes from a thread other than the loop's are sent directly when
//   nothing is pending (both backends); otherwise the backend takes over on
//   the loop. With io_uring, writes on the loop's own thread always go to the
//   backend, so that all the sends of one loop iteration share one system
//   call (batch_on_loop_).
//
// TLS (tls_engine.hpp): a transport may carry a TlsEngine, published once
// through the atomic tls_ (at creation, or by start_tls on a live
// connection) and owned until the transport goes. With one, received bytes
// go to the engine instead of the reader (deliver / deliver_eof), and
// write / write_eof / close pass through it; raw_write is the plain write
// the engine sends its records with.
#pragma once

#include <weft/address.hpp>
#include <weft/detail/fd_stream.hpp>
#include <weft/event_loop.hpp>
#include <weft/future.hpp>
#include <weft/reactor/io_ring.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace weft::detail {

class Transport;
class TlsEngine;
struct SslContextState;

class ReaderState {
 public:
  explicit ReaderState(std::size_t limit) : limit_(limit) {}

  std::size_t limit() const noexcept { return limit_; }

  /// Appends data and wakes the waiter. Returns true when the transport
  /// should stop reading (buffer above 2 * limit).
  bool feed_data(std::string_view data);
  /// The same, taking the string itself where nothing is buffered (the TLS
  /// engine's plaintext then reaches read() without a copy).
  bool feed_data(std::string&& data);
  /// Bytes that may still be fed before feed_data asks to pause: at least 1
  /// while not paused. Only feed_data adds bytes, so from the feeding thread
  /// this is a lower bound however the readers consume meanwhile.
  std::size_t room() const;
  void feed_eof();
  /// Removes and returns every unread byte (start_tls: they are TLS records).
  std::string take_buffered();
  void set_exception(std::exception_ptr e);
  std::exception_ptr exception() const;
  bool at_eof() const;

  /// The transport to resume when readers drain the buffer (weak: the
  /// transport owns this state, not the other way round).
  void attach(std::weak_ptr<Transport> transport);

  // The reads take the state by shared_ptr so that the frame keeps it alive.
  static Coro<std::string> read(std::shared_ptr<ReaderState> self, ssize_t n);
  static Coro<std::size_t> readinto(std::shared_ptr<ReaderState> self, std::span<std::byte> into);
  static Coro<std::string> readexactly(std::shared_ptr<ReaderState> self, ssize_t n);
  static Coro<std::string> readuntil(std::shared_ptr<ReaderState> self,
                                     std::vector<std::string> separators);
  static Coro<std::string> readline(std::shared_ptr<ReaderState> self);
  /// StreamReader::peek / consume: a view of the buffered bytes, pinned until
  /// the next reader-side call.
  static Coro<std::string_view> peek(std::shared_ptr<ReaderState> self, std::size_t min);
  void consume(std::size_t n);

 private:
  /// feed_data's body: `owned` (whose bytes `data` views) is moved in when
  /// the buffer it goes to is empty.
  bool feed(std::string_view data, std::string* owned);
  /// One try of a read, the step every read loops over: under mu_ (the pin
  /// ended, a stored error rethrown) `take(*this, resume)` takes what the
  /// read returns (true) or finds too little (false: a waiter is
  /// registered and returned, for the caller to await unlocked and try
  /// again). A paused transport is resumed after mu_ is released. Throws
  /// what `take` throws.
  template <class Take>
  std::optional<Future<void>> attempt(const char* what, Take& take) {
    std::optional<Future<void>> wait;
    bool resume = false;
    {
      std::lock_guard lock(mu_);
      unpin_locked();
      if (error_) std::rethrow_exception(error_);
      if (!take(*this, resume)) wait = wait_locked(what, resume);
    }
    if (resume) resume_transport();
    return wait;
  }
  /// Registers a waiter (RuntimeError if one exists); resumes a paused
  /// transport. Called with mu_ held; the caller awaits the result unlocked.
  Future<void> wait_locked(const char* what, bool& resume);
  /// Consumes n bytes from the front; true if the transport should resume.
  bool consume_locked(std::size_t n);
  /// Puts `data`, taken from the front earlier, back at the front.
  void unread(const std::string& data);
  /// Ends a pin: the bytes fed meanwhile join the buffer. Every reader-side
  /// entry point calls it first (with mu_ held), which is what ends a view.
  void unpin_locked();
  void resume_transport();

  const std::size_t limit_;
  mutable std::mutex mu_;
  std::string buffer_;  // guarded by mu_; unread bytes start at pos_
  // While a view from peek() is out (pinned_), buffer_ must not move: feeds
  // go to incoming_ instead, and join buffer_ when the pin ends.
  bool pinned_ = false;                 // guarded by mu_
  std::string incoming_;                // guarded by mu_; empty unless pinned_
  std::size_t pos_ = 0;                 // guarded by mu_
  bool eof_ = false;                    // guarded by mu_
  bool paused_ = false;                 // guarded by mu_: the transport was asked to stop reading
  std::exception_ptr error_;            // guarded by mu_
  std::optional<Future<void>> waiter_;  // guarded by mu_
  std::weak_ptr<Transport> transport_;  // guarded by mu_
};

/// One buffered write's bytes, owned by the transport: copied in (`ours`:
/// later small writes may be appended) or moved in from the caller.
struct WriteChunk {
  std::string str;               // the bytes, unless is_bytes
  std::vector<std::byte> bytes;  // the bytes, if is_bytes
  bool is_bytes = false;
  bool ours = false;
  const char* data() const noexcept {
    return is_bytes ? reinterpret_cast<const char*>(bytes.data()) : str.data();
  }
  std::size_t size() const noexcept { return is_bytes ? bytes.size() : str.size(); }
};

/// The bytes a transport has yet to send, as a queue of chunks so that a
/// moved-in string or vector is sent from where it lies (no copy) and many
/// chunks go in one vectored send. Not thread-safe (the transport's mu_).
/// Pushing never moves the bytes of chunks already queued (std::deque keeps
/// its elements in place and a chunk's heap buffer moves with it), so iovecs
/// gathered from the front stay valid while a send reads them.
class WriteQueue {
 public:
  /// Most iovecs one gather() fills (below IOV_MAX).
  static constexpr int kMaxIov = 64;

  std::size_t bytes() const noexcept { return bytes_; }
  bool empty() const noexcept { return bytes_ == 0; }
  /// Queues `chunk` after the first `skip` of its bytes (already sent). A
  /// non-zero skip only on an empty queue: a direct send is tried only then.
  void push(WriteChunk chunk, std::size_t skip);
  /// Queues a copy of `data`, appended to the last chunk when that is ours
  /// and not also the partly sent front (which would then never shrink).
  void append_copy(std::string_view data);
  /// Fills up to `max` iovecs from the front; returns how many.
  int gather(::iovec* iov, int max) const noexcept;
  /// Drops the first n bytes (n <= bytes()).
  void consume(std::size_t n) noexcept;
  void clear() noexcept;
  void swap(WriteQueue& other) noexcept;

 private:
  std::deque<WriteChunk> chunks_;
  std::size_t front_off_ = 0;  // bytes of chunks_.front() already sent
  std::size_t bytes_ = 0;      // unsent bytes in all
};

// Inline: every flush step of both backends (transport_epoll.cpp,
// transport_uring.cpp) runs these.
inline void WriteQueue::push(WriteChunk chunk, std::size_t skip) {
  if (chunk.size() <= skip) return;
  if (chunks_.empty()) front_off_ = skip;
  bytes_ += chunk.size() - skip;
  chunks_.push_back(std::move(chunk));
}

inline void WriteQueue::append_copy(std::string_view data) {
  if (data.empty()) return;
  bytes_ += data.size();
  if (!chunks_.empty() && chunks_.back().ours && !(chunks_.size() == 1 && front_off_ > 0)) {
    chunks_.back().str.append(data);
    return;
  }
  WriteChunk chunk;
  chunk.str.assign(data);
  chunk.ours = true;
  chunks_.push_back(std::move(chunk));
}

inline int WriteQueue::gather(::iovec* iov, int max) const noexcept {
  int n = 0;
  std::size_t off = front_off_;
  for (auto it = chunks_.begin(); it != chunks_.end() && n < max; ++it, off = 0) {
    iov[n].iov_base = const_cast<char*>(it->data() + off);
    iov[n].iov_len = it->size() - off;
    ++n;
  }
  return n;
}

inline void WriteQueue::consume(std::size_t n) noexcept {
  bytes_ -= n;
  while (n > 0) {
    const std::size_t left = chunks_.front().size() - front_off_;
    if (n < left) {
      front_off_ += n;
      return;
    }
    n -= left;
    chunks_.pop_front();
    front_off_ = 0;
  }
  if (bytes_ == 0) {
    chunks_.clear();
    front_off_ = 0;
  }
}

inline void WriteQueue::clear() noexcept {
  chunks_.clear();
  front_off_ = 0;
  bytes_ = 0;
}

inline void WriteQueue::swap(WriteQueue& other) noexcept {
  chunks_.swap(other.chunks_);
  std::swap(front_off_, other.front_off_);
  std::swap(bytes_, other.bytes_);
}

/// How a transport moves bytes between its fd and its buffers: the epoll
/// backend (make_epoll_io, transport_epoll.cpp) or the io_uring backend
/// (make_uring_io, transport_uring.cpp). Owned by its Transport; runs on the
/// loop's thread except where noted.
class TransportIo {
 public:
  virtual ~TransportIo() = default;
  /// Starts reading (reading_ is false, the transport open). @throws where
  /// nothing can be read; the caller tears the connection down.
  virtual void start_reading() = 0;
  /// Stops reading: a pause or a close (reading_ is true).
  virtual void stop_reading() = 0;
  /// The loop's side of a flush the write path queued (flush_queued_ set,
  /// no send in flight): sends, or waits for the fd to take, wbuf_.
  virtual void flush() = 0;
  /// mu_ held: close() found bytes pending; makes sure they are on their way.
  virtual void flush_for_close_locked() = 0;
  /// Teardown: ends every registration and request (reading_ and the
  /// writer's state are reset by the caller).
  virtual void cancel() noexcept = 0;
  /// True when no request the kernel holds is outstanding: the fd may close.
  virtual bool idle() const noexcept = 0;
};

class Transport : public std::enable_shared_from_this<Transport> {
 public:
  /// Takes ownership of `fd`; call start() once the shared_ptr exists.
  /// `ring`: the loop's IoRing for completion-based I/O (sockets only), or
  /// null for readiness-based I/O. Called on `loop`'s thread when ring is set.
  Transport(EventLoop& loop, int fd, FdKind kind, bool readable, bool writable, std::size_t limit,
            IoRing* ring);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  /// Registers for reading on the loop (when readable).
  void start();

  const std::shared_ptr<ReaderState>& reader() const noexcept { return reader_; }
  EventLoop& loop() const noexcept { return *loop_; }
  FdKind kind() const noexcept { return kind_; }

  // --- StreamWriter (any thread) ---
  /// Writes `pieces` in order, as one vectored send where nothing is queued.
  /// `owned`: null (what is not sent at once is copied), or one chunk per
  /// piece holding its bytes, moved into the queue instead.
  void write(std::span<const std::string_view> pieces, WriteChunk* owned);
  /// Static so that the frame holds the transport alive.
  static Coro<void> drain(std::shared_ptr<Transport> self);
  /// StreamWriter::sendfile (sendfile.cpp).
  static Coro<std::size_t> sendfile(std::shared_ptr<Transport> self, int file, off_t offset,
                                    std::optional<std::int64_t> count);
  /// sendfile: waits until nothing is buffered or in flight, then claims the
  /// fd (write() refuses meanwhile). @throws as drain(), RuntimeError.
  static Coro<void> begin_sendfile(std::shared_ptr<Transport> self);
  /// Gives the fd back: a close, write_eof or fd close that waited goes on.
  void end_sendfile() noexcept;
  void write_eof();
  void close();
  /// Drops what is buffered and closes at once (asyncio's transport.abort()).
  void abort();
  bool is_closing() const;
  Coro<void> wait_closed();
  std::size_t buffered() const;
  void set_limits(std::size_t high, std::size_t low);
  int fileno() const;
  std::optional<Address> peername() const { return peer_; }
  std::optional<Address> sockname() const { return local_; }

  /// Runs `fn` on the loop once the fd is closed (a server's bookkeeping).
  void on_closed(std::function<void()> fn);
  /// Resumes reading after a pause (any thread).
  void resume_reading();

  // --- TLS ---
  /// Loop thread only (so no received byte can pass between the plain reader
  /// and the engine): creates and publishes this connection's TLS engine,
  /// hands it the bytes the reader holds unread (they can only be the
  /// peer's first records), and starts the handshake; await
  /// tls()->handshake(). @throws RuntimeError if the connection already has
  /// one or is closed, SSLError if OpenSSL refuses.
  TlsEngine& attach_tls(std::shared_ptr<SslContextState> ctx, bool server_side,
                        std::string server_hostname, Duration shutdown_timeout);
  /// The engine, or null for a plain connection.
  TlsEngine* tls() const noexcept { return tls_.load(std::memory_order_acquire); }
  /// The plain write, under the engine (ciphertext).
  void raw_write(std::string_view data);
  /// The same, the string queued as it is (no copy) where the kernel does
  /// not take it all at once.
  void raw_write(std::string&& data);
  /// Ends the connection now, without flushing: teardown with `error` on the loop.
  void abort(std::exception_ptr error) { fail(std::move(error)); }

 private:
  friend class EpollIo;
  friend class UringIo;

  // loop-only
  /// write() without the engine.
  void write_plain(std::span<const std::string_view> pieces, WriteChunk* owned);
  /// Bytes read from the fd: to the engine or the reader; true = pause.
  bool deliver(std::string_view data);
  /// The fd's EOF: to the engine or the reader.
  void deliver_eof();
  void arm_reader();
  /// Stops reading if reading (a pause, a close).
  void pause_reading();
  void close_on_loop();
  /// Removes the registrations, closes the fd, feeds EOF (or the error) to
  /// the reader, fails drain waiters and completes wait_closed.
  void teardown(std::exception_ptr error);
  /// From any thread: teardown with `error` on the loop.
  void fail(std::exception_ptr error);
  /// Closes the fd and completes wait_closed and the on_closed hooks (after
  /// teardown, once no ring request is outstanding).
  void finish_close();
  /// mu_ held, after a flush step of either backend: once nothing is
  /// pending, sends the FIN that write_eof asked for and takes the waiters
  /// for "nothing buffered"; at or below the low-water mark, the drain
  /// waiters. Returns true when a close was waiting for this flush.
  [[gnu::always_inline]] bool sent_locked(std::vector<Future<void>>& waiters);
  /// "<verb> <peer>" for error messages, `without_peer` when there is no peer.
  std::string op_name(const char* verb, const char* without_peer) const;

  /// One sendmsg (socket) or writev (pipe) of `iov`; returns the bytes
  /// sent, or -errno on failure (-EAGAIN when it would block).
  ssize_t send_iov(const ::iovec* iov, int count);
  std::size_t pending_locked() const noexcept { return wbuf_.bytes() + sending_.bytes(); }
  /// Appends the drain waiters to `out`.
  void take_waiters_locked(std::vector<Future<void>>& out) {
    for (auto& w : drain_waiters_) out.push_back(std::move(w));
    drain_waiters_.clear();
  }
  void take_empty_waiters_locked(std::vector<Future<void>>& out) {
    for (auto& w : empty_waiters_) out.push_back(std::move(w));
    empty_waiters_.clear();
  }

  EventLoop* const loop_;
  const int fd_;
  const FdKind kind_;
  const bool readable_;
  const bool writable_;
  // Writes on the loop's thread go to the backend, never straight to the fd.
  // True exactly when io_ is the io_uring backend (a UringIo): the write
  // path calls it without virtual dispatch.
  const bool batch_on_loop_;
  std::shared_ptr<ReaderState> reader_;
  std::optional<Address> peer_;
  std::optional<Address> local_;
  std::unique_ptr<TransportIo> io_;  // set in the constructor, never changed

  // loop-only
  bool reading_ = false;     // the backend reads (not paused, not at EOF, not closed)
  bool reader_eof_ = false;  // the peer's EOF was read
  bool fd_closed_ = false;
  std::exception_ptr close_error_;  // teardown's error, for wait_closed
  TimerHandle shutdown_timer_;      // TLS: bounds a close's flush

  // ordering: acquire/release: whoever sees the engine sees it constructed.
  std::atomic<TlsEngine*> tls_{nullptr};
  std::unique_ptr<TlsEngine> tls_owner_;  // guarded by mu_ (set once); owns *tls_
  Duration tls_shutdown_timeout_{};       // written before tls_ is published

  mutable std::mutex mu_;
  WriteQueue wbuf_;           // guarded by mu_: unsent bytes not in flight
  WriteQueue sending_;        // guarded by mu_: a ring send's bytes, in flight (empty on epoll)
  bool send_active_ = false;  // guarded by mu_: a ring send is outstanding (never on epoll)
  // guarded by mu_: a flush step that takes wbuf_ along is on its way, set by
  // the write path that queued the first bytes: io_uring, io_->flush() is
  // queued to the loop (cleared when it runs); epoll, the writer callback is
  // registered or queued (cleared once it leaves nothing pending).
  bool flush_queued_ = false;
  std::size_t high_;            // guarded by mu_
  std::size_t low_;             // guarded by mu_
  bool eof_requested_ = false;  // guarded by mu_
  bool eof_sent_ = false;       // guarded by mu_
  bool closing_ = false;        // guarded by mu_: close() called or connection lost
  bool closed_ = false;         // guarded by mu_; set on the loop, then the fd is closed
  std::exception_ptr error_;    // guarded by mu_
  std::vector<Future<void>> drain_waiters_;       // guarded by mu_
  std::vector<std::function<void()>> on_closed_;  // guarded by mu_
  bool hooks_ran_ = false;                        // guarded by mu_: finish_close took on_closed_
  // sendfile (sendfile.cpp): while active, the calling task owns the fd's
  // sending side; write() refuses, close and write_eof wait for its end, and
  // finish_close leaves the fd open (close_after_sendfile_) until then.
  bool sendfile_active_ = false;             // guarded by mu_
  bool close_after_sendfile_ = false;        // guarded by mu_
  std::vector<Future<void>> empty_waiters_;  // guarded by mu_: nothing buffered or in flight
  Future<void> closed_future_;               // completed by teardown
};

[[gnu::always_inline]] inline bool Transport::sent_locked(std::vector<Future<void>>& waiters) {
  bool close_waits = false;
  if (pending_locked() == 0) {
    if (eof_requested_ && !eof_sent_) {
      ::shutdown(fd_, SHUT_WR);
      eof_sent_ = true;
    }
    close_waits = closing_;
    take_empty_waiters_locked(waiters);
  }
  if (pending_locked() <= low_) take_waiters_locked(waiters);
  return close_waits;
}

/// Completes every future in `waiters` (a cancelled one stays as it is)
/// and clears the list. Call without mu_ held.
void complete_all(std::vector<Future<void>>& waiters);

/// The backends (each in its own file).
std::unique_ptr<TransportIo> make_epoll_io(Transport& t);
std::unique_ptr<TransportIo> make_uring_io(Transport& t, IoRing& ring);

/// Closes its transport when the last user handle (reader or writer) goes.
class StreamOwner {
 public:
  explicit StreamOwner(std::shared_ptr<Transport> t) : transport(std::move(t)) {}
  ~StreamOwner() { transport->close(); }
  std::shared_ptr<Transport> transport;
};

/// Attaches a TLS engine to `t` and waits for its handshake. On failure,
/// timeout or cancellation the connection is closed (aborted on timeout).
/// @throws SSLError, SSLCertVerificationError, std::system_error
///         (connection_reset, connection_aborted on timeout), ValueError.
Coro<void> tls_handshake(std::shared_ptr<Transport> t, std::shared_ptr<SslContextState> ctx,
                         bool server_side, std::string server_hostname, Duration handshake_timeout,
                         Duration shutdown_timeout);

/// Wraps an fd into a started transport on the running loop.
std::shared_ptr<Transport> make_transport(int fd, FdKind kind, bool readable, bool writable,
                                          std::size_t limit);

}  // namespace weft::detail

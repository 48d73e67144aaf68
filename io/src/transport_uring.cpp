// Transport's io_uring backend: completion-based I/O through the loop's
// IoRing (sockets on a loop whose selector has one).
//
// Invariants (on top of transport.hpp's and io_ring.hpp's):
// - Reading: one recv (recv_op_) feeds the reader from the ring's
//   completions, limited to the reader's room() so that a multishot one ends
//   by itself where the reader pauses (io_ring.hpp: a cancel may not stop it
//   while data keeps arriving). One that ends while reading_ is issued
//   again; a pause or a close cancels it, again with each completion until
//   it takes.
// - Writing: a write on the loop's thread queues a send request, so that all
//   the sends of one loop iteration go to the kernel in one system call. At
//   most one send is in flight (ordering): its chunks live in sending_ (one
//   SEND, or one SENDMSG over up to 64 chunks), which nobody changes until
//   its completion; later writes gather in wbuf_ and go with the next send.
//   A write from another thread sends directly when nothing is buffered or
//   in flight, else appends to wbuf_ and, if no send is in flight, asks the
//   loop to start one (kick_queued_: at most one such request queued).
// - Lifetime: while a request is outstanding the backend holds a reference
//   to its transport (keepalive_), and close(fd) waits until the last one has
//   completed (teardown cancels them; idle() says when), so the kernel never
//   sees a reused fd number or freed bytes. If the ring goes away first
//   (its loop is destroyed), every request is abandoned instead and the fd is
//   closed by the last one.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "socket_util.hpp"
#include "transport.hpp"

namespace weft::detail {

class UringIo final : public TransportIo {
 public:
  UringIo(Transport& t, IoRing& ring) : t_(t), ring_(ring) {}

  void start_reading() override {
    // An op has one request at a time: one still outstanding goes on.
    if (recv_op_.active()) return;
    recv_chunk_ = ring_.prep_recv(recv_op_, t_.fd_, t_.reader_->room(), false);
    op_issued();
  }

  void stop_reading() override { ring_.prep_cancel(recv_op_); }

  bool queued_locked(bool on_loop) override {
    if (t_.send_active_) return false;  // the running send's completion takes wbuf_ along
    if (on_loop) {
      start_send_locked();
      return false;
    }
    if (kick_queued_) return false;
    kick_queued_ = true;
    return true;
  }

  void flush() override;

  void flush_for_close_locked() override {
    if (!t_.send_active_) start_send_locked();
  }

  void cancel() noexcept override {
    try {
      ring_.prep_cancel(recv_op_);
      ring_.prep_cancel(send_op_);
    } catch (const std::system_error&) {
      // No room to ask: ending the connection completes both requests.
      ::shutdown(t_.fd_, SHUT_RDWR);
    }
  }

  bool idle() const noexcept override { return ops_outstanding_ == 0; }

 private:
  struct RecvOp final : IoOp {
    explicit RecvOp(UringIo* io) : io(io) {}
    void complete(int res, std::uint32_t flags) noexcept override { io->on_recv(res, flags); }
    void abandon() noexcept override { io->op_abandoned(); }
    UringIo* io;
  };
  struct SendOp final : IoOp {
    explicit SendOp(UringIo* io) : io(io) {}
    void complete(int res, std::uint32_t) noexcept override { io->on_sent(res); }
    void abandon() noexcept override { io->op_abandoned(); }
    UringIo* io;
  };

  void on_recv(int res, std::uint32_t flags) noexcept;
  void on_sent(int res) noexcept;
  /// Issues the send of sending_, else of wbuf_ (mu_ held, no send in flight).
  void start_send_locked();
  void op_issued();
  /// A request finished; may drop the last reference to the transport.
  void op_done() noexcept;
  /// A request will never finish (the ring is gone); may drop the last reference.
  void op_abandoned() noexcept;

  Transport& t_;
  IoRing& ring_;
  // loop-only
  RecvOp recv_op_{this};
  std::size_t recv_chunk_ = 0;  // the most one completion of recv_op_ can carry
  SendOp send_op_{this};
  unsigned ops_outstanding_ = 0;
  std::shared_ptr<Transport> keepalive_;  // set while ops_outstanding_ > 0
  // guarded by t_.mu_
  std::array<::iovec, WriteQueue::kMaxIov> send_iov_{};  // in flight
  ::msghdr send_msg_{};                                  // in flight
  bool kick_queued_ = false;                             // flush() is queued to the loop
};

void UringIo::op_issued() {
  if (ops_outstanding_++ == 0) keepalive_ = t_.shared_from_this();
}

void UringIo::op_done() noexcept {
  if (--ops_outstanding_ > 0) return;
  if (t_.closed_ && !t_.fd_closed_) t_.finish_close();      // teardown waited for this
  std::shared_ptr<Transport> last = std::move(keepalive_);  // may end the transport and us
}

void UringIo::op_abandoned() noexcept {
  if (--ops_outstanding_ > 0) return;
  // The ring goes away with its loop: close the fd, nobody is left to tell.
  if (t_.closed_ && !t_.fd_closed_) {
    ::close(t_.fd_);
    t_.fd_closed_ = true;
  }
  std::shared_ptr<Transport> last = std::move(keepalive_);  // may end the transport and us
}

void UringIo::on_recv(int res, std::uint32_t flags) noexcept {
  const bool more = IoRing::more(flags);
  try {
    if (res > 0) {
      // The recv takes at most the reader's room, so the completion that
      // pauses the reader is the recv's last (io_ring.hpp). Bytes that arrive
      // after a close are dropped.
      if (!t_.closed_ && t_.deliver(ring_.buffer(res, flags)))
        t_.reading_ = false;  // paused until a read brings the buffer back to the limit
    } else if (res == 0) {
      if (!t_.closed_ && !t_.reader_eof_) {
        t_.reading_ = false;
        t_.reader_eof_ = true;
        t_.deliver_eof();  // the socket stays open for writing (half-close)
      }
    } else if (res != -ENOBUFS && res != -ECANCELED && res != -EINTR && !t_.closed_) {
      t_.teardown(std::make_exception_ptr(os_error(-res, t_.op_name("recv from", "read"))));
    }
    if (more) {
      // A multishot recv goes on. Closed: cancel it, again with every
      // completion, since a cancel may not take while data keeps arriving.
      if (!t_.reading_ || t_.closed_) ring_.prep_cancel(recv_op_);
      return;
    }
    // It ended: single-shot, its byte limit (where the reader did not pause,
    // having read meanwhile), -ENOBUFS (the buffers are back before the next
    // submission), or a thread exit (io_ring.hpp). After a short single-shot
    // read the socket is empty: the next recv waits for readiness first.
    if (t_.reading_ && !t_.closed_ && !t_.reader_eof_) {
      recv_chunk_ = ring_.prep_recv(recv_op_, t_.fd_, t_.reader_->room(),
                                    res > 0 && static_cast<std::size_t>(res) < recv_chunk_);
      op_issued();
    }
  } catch (...) {
    if (!t_.closed_) t_.teardown(std::current_exception());
  }
  if (!more) op_done();
}

void UringIo::start_send_locked() {
  // Whatever is in sending_ goes first (a partial send's rest); else the queue.
  if (t_.sending_.empty()) t_.sending_.swap(t_.wbuf_);
  const int count = t_.sending_.gather(send_iov_.data(), static_cast<int>(send_iov_.size()));
  if (count == 1) {
    ring_.prep_send(send_op_, t_.fd_, static_cast<const char*>(send_iov_[0].iov_base),
                    send_iov_[0].iov_len);
  } else {
    send_msg_ = {};
    send_msg_.msg_iov = send_iov_.data();
    send_msg_.msg_iovlen = static_cast<std::size_t>(count);
    ring_.prep_sendmsg(send_op_, t_.fd_, &send_msg_);
  }
  t_.send_active_ = true;
  op_issued();
}

void UringIo::flush() {
  try {
    std::lock_guard lock(t_.mu_);
    kick_queued_ = false;
    if (t_.closed_ || t_.send_active_ || t_.pending_locked() == 0) return;
    start_send_locked();
  } catch (...) {
    t_.teardown(std::current_exception());
  }
}

void UringIo::on_sent(int res) noexcept {
  std::vector<Future<void>> waiters;
  std::exception_ptr error;
  bool close_waits = false;
  try {
    std::lock_guard lock(t_.mu_);
    t_.send_active_ = false;
    if (t_.closed_) {
      t_.sending_.clear();
    } else if (res == -ECANCELED) {
      // The thread that submitted it exited (a standalone loop now run by
      // another thread): the bytes were not sent, so send them again.
      start_send_locked();
    } else if (res < 0) {
      error = std::make_exception_ptr(os_error(-res, t_.op_name("send to", "write")));
    } else {
      t_.sending_.consume(static_cast<std::size_t>(res));
      // The rest of this send first, then anything queued since.
      if (t_.pending_locked() > 0) start_send_locked();
      close_waits = t_.sent_locked(waiters);
    }
  } catch (...) {
    error = std::current_exception();
  }
  complete_all(waiters);
  if (error)
    t_.teardown(error);
  else if (close_waits)
    t_.teardown(nullptr);
  op_done();
}

std::unique_ptr<TransportIo> make_uring_io(Transport& t, IoRing& ring) {
  return std::make_unique<UringIo>(t, ring);
}

}  // namespace weft::detail

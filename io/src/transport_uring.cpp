// Transport's io_uring backend: the members of UringIo (transport_uring.hpp:
// the class and its invariants).
#include "transport_uring.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "socket_util.hpp"

namespace weft::detail {

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
    t_.flush_queued_ = false;
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

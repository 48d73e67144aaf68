// Transport's io_uring backend: completion-based I/O through the loop's
// IoRing (sockets on a loop whose selector has one). The class is here, its
// members in transport_uring.cpp.
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
//   loop to start one (Transport::flush_queued_: at most one such request
//   queued). The write path (transport.cpp) knows this backend statically
//   (Transport::batch_on_loop_) and calls send_locked() directly: one call
//   per write, no virtual dispatch.
// - Lifetime: while a request is outstanding the backend holds a reference
//   to its transport (keepalive_), and close(fd) waits until the last one has
//   completed (teardown cancels them; idle() says when), so the kernel never
//   sees a reused fd number or freed bytes. If the ring goes away first
//   (its loop is destroyed), every request is abandoned instead and the fd is
//   closed by the last one.
#pragma once

#include <weft/reactor/io_ring.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

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

  /// mu_ held, on the loop's thread: bytes were queued. Starts a send
  /// unless one is in flight (its completion takes them along).
  void send_locked() {
    if (!t_.send_active_) start_send_locked();
  }

  void flush() override;

  void flush_for_close_locked() override { send_locked(); }

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
};

}  // namespace weft::detail

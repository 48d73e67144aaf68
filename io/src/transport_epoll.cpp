// Transport's epoll backend: readiness-based I/O through the loop's
// add_reader/add_writer (pipes, and sockets where io_uring is unavailable).
//
// Invariants (on top of transport.hpp's):
// - Reading: while the transport is reading_, the fd is registered for
//   reading with its loop and nowhere else; on_readable reads one chunk per
//   readiness (level-triggered: the loop calls again while more is there)
//   and unregisters where the reader pauses, at EOF, or on an error.
// - Writing: write() tries the fd directly when nothing is pending (from any
//   thread); what the kernel did not take waits in wbuf_, and
//   Transport::flush_queued_ (mu_) says that the writer callback is, or is
//   being, registered: it is
//   set with the first queued byte and cleared only by the callback that
//   leaves nothing pending, so exactly one arm_writer is in flight per
//   buffered stretch and bytes never wait without one. sending_ and
//   send_active_ stay empty/false: nothing is ever in flight outside wbuf_.
// - on_writable writes until the kernel refuses (EAGAIN) or nothing is
//   left, then hands the outcome to Transport::sent_locked like the io_uring
//   backend does, so drain waiters, write_eof's FIN and a waiting close see
//   the same rules on both.
// - Nothing is outstanding in the kernel: idle() is always true, and the fd
//   may close as soon as teardown has unregistered it.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "socket_util.hpp"
#include "transport.hpp"

namespace weft::detail {

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
}  // namespace

class EpollIo final : public TransportIo {
 public:
  explicit EpollIo(Transport& t) : t_(t) {}

  void start_reading() override {
    t_.loop_->add_reader(t_.fd_, [self = t_.shared_from_this(), this] { on_readable(); });
  }

  void stop_reading() override { t_.loop_->remove_reader(t_.fd_); }

  void flush() override { arm_writer(); }

  // flush_queued_ was set with the first pending byte: the writer is on its way.
  void flush_for_close_locked() override {}

  void cancel() noexcept override {
    {
      std::lock_guard lock(t_.mu_);
      t_.flush_queued_ = false;
    }
    if (t_.reading_) t_.loop_->remove_reader(t_.fd_);
    if (writer_registered_) t_.loop_->remove_writer(t_.fd_);
    writer_registered_ = false;
  }

  bool idle() const noexcept override { return true; }

 private:
  void on_readable();
  void arm_writer();
  void on_writable();

  Transport& t_;
  bool writer_registered_ = false;  // loop-only
};

void EpollIo::on_readable() {
  if (t_.closed_ || !t_.reading_) return;
  thread_local std::string chunk(kReadChunk, '\0');
  ssize_t n;
  do {
    n = t_.kind_ == FdKind::socket ? ::recv(t_.fd_, chunk.data(), chunk.size(), 0)
                                   : ::read(t_.fd_, chunk.data(), chunk.size());
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    // A pause lasts until a read brings the buffer back to the limit.
    if (t_.deliver(std::string_view(chunk.data(), static_cast<std::size_t>(n)))) t_.pause_reading();
    return;
  }
  if (n == 0) {
    t_.pause_reading();
    t_.reader_eof_ = true;
    t_.deliver_eof();
    // A pipe's read end has nothing left to do; a socket stays open for
    // writing (half-close, as asyncio's StreamReaderProtocol.eof_received).
    if (!t_.writable_) t_.teardown(nullptr);
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return;
  std::string op = t_.op_name("recv from", "read");
  t_.teardown(std::make_exception_ptr(os_error(errno, op)));
}

void EpollIo::arm_writer() {
  if (t_.closed_ || writer_registered_) return;
  {
    std::lock_guard lock(t_.mu_);
    if (!t_.flush_queued_) return;
  }
  t_.loop_->add_writer(t_.fd_, [self = t_.shared_from_this(), this] { on_writable(); });
  writer_registered_ = true;
}

void EpollIo::on_writable() {
  if (t_.closed_) return;
  std::vector<Future<void>> waiters;
  std::exception_ptr error;
  bool flushed = false, close_waits = false;
  {
    std::lock_guard lock(t_.mu_);
    while (t_.pending_locked() > 0) {
      std::array<::iovec, WriteQueue::kMaxIov> iov;
      const int count = t_.wbuf_.gather(iov.data(), static_cast<int>(iov.size()));
      ssize_t n = t_.send_iov(iov.data(), count);
      if (n >= 0) {
        t_.wbuf_.consume(static_cast<std::size_t>(n));
        continue;
      }
      if (n != -EAGAIN) {
        std::string op = t_.op_name("send to", "write");
        error = std::make_exception_ptr(os_error(static_cast<int>(-n), op));
      }
      break;
    }
    if (!error) {
      flushed = t_.pending_locked() == 0;
      if (flushed) t_.flush_queued_ = false;
      close_waits = t_.sent_locked(waiters);
    }
  }
  complete_all(waiters);
  if (error) return t_.teardown(error);
  if (flushed) {
    t_.loop_->remove_writer(t_.fd_);
    writer_registered_ = false;
  }
  if (close_waits) t_.teardown(nullptr);
}

std::unique_ptr<TransportIo> make_epoll_io(Transport& t) { return std::make_unique<EpollIo>(t); }

}  // namespace weft::detail

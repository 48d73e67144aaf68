// StreamWriter::sendfile: a file's bytes to the connection through
// sendfile(2), falling back to read-and-write (asyncio's loop.sendfile).
//
// Protocol (fields in transport.hpp): begin_sendfile waits until nothing is
// buffered or in flight, then sets sendfile_active_ under mu_; from then the
// calling task alone sends on the fd, so its bytes cannot interleave with
// writes (write() raises RuntimeError, as asyncio's transport does). A close
// or write_eof meanwhile waits for end_sendfile; a teardown (error, abort)
// shuts the socket down so that a sendfile waiting for room wakes, sees
// closed_ and stops, and the fd itself is closed only after end_sendfile
// (close_after_sendfile_), so sendfile(2) never sees a reused fd number.
#include <weft/errors.hpp>
#include <weft/stream_writer.hpp>

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <string>

#include "socket_util.hpp"
#include "transport.hpp"

namespace weft {
namespace detail {

namespace {
constexpr std::size_t kFallbackChunk = 256 * 1024;
// One sendfile(2) call's most: the kernel caps it at about 2 GiB anyway.
constexpr std::size_t kMaxSendfile = std::size_t{1} << 30;

std::string where_of(int file) { return "sendfile from fd " + std::to_string(file); }

// Ends the claim however the native part exits (error, cancellation).
struct SendfileClaim {
  Transport* transport;
  ~SendfileClaim() {
    if (transport) transport->end_sendfile();
  }
  void release() {
    if (transport) std::exchange(transport, nullptr)->end_sendfile();
  }
};
}  // namespace

Coro<void> Transport::begin_sendfile(std::shared_ptr<Transport> self) {
  for (;;) {
    std::optional<Future<void>> wait;
    {
      std::lock_guard lock(self->mu_);
      if (self->error_) std::rethrow_exception(self->error_);
      if (self->closing_ || self->closed_)
        throw os_error(ECONNRESET, "sendfile: the connection is closed");
      if (self->eof_requested_) throw RuntimeError("Cannot call sendfile() after write_eof()");
      if (self->sendfile_active_) throw RuntimeError("sendfile: another sendfile is in progress");
      if (self->pending_locked() == 0 && !self->send_active_) {
        self->sendfile_active_ = true;
        co_return;
      }
      wait.emplace();
      self->empty_waiters_.push_back(*wait);
    }
    co_await std::move(*wait);
  }
}

void Transport::end_sendfile() noexcept {
  bool close_fd = false, close = false;
  {
    std::lock_guard lock(mu_);
    sendfile_active_ = false;
    close_fd = std::exchange(close_after_sendfile_, false);
    if (!closed_ && eof_requested_ && !eof_sent_) {
      if (kind_ == FdKind::pipe) {
        closing_ = true;  // write_eof on a pipe closes it
        close = true;
      } else {
        ::shutdown(fd_, SHUT_WR);
        eof_sent_ = true;
      }
    }
    if (!closed_ && closing_) close = true;  // a close() waited for us
  }
  auto self = shared_from_this();
  if (close_fd)
    run_on_loop(*loop_, [self] { self->finish_close(); });
  else if (close)
    run_on_loop(*loop_, [self] { self->close_on_loop(); });
}

Coro<std::size_t> Transport::sendfile(std::shared_ptr<Transport> self, int file, off_t offset,
                                      std::optional<std::int64_t> count) {
  if (offset < 0)
    throw ValueError("sendfile: offset must be a non-negative integer (got " +
                     std::to_string(offset) + ")");
  if (count && *count <= 0)
    throw ValueError("sendfile: count must be a positive integer (got " + std::to_string(*count) +
                     ")");
  if (!self->writable_) throw RuntimeError("sendfile: this stream is not writable");
  struct stat st {};
  if (::fstat(file, &st) < 0) throw_os_error(errno, where_of(file));
  // What must arrive: `count`, else a regular file's size now (so that one
  // that shrinks meanwhile is an error), else everything up to EOF.
  std::optional<std::uint64_t> expected;
  if (count)
    expected = static_cast<std::uint64_t>(*count);
  else if (S_ISREG(st.st_mode))
    expected = st.st_size > offset ? static_cast<std::uint64_t>(st.st_size - offset) : 0;
  if (expected && *expected == 0) co_return 0;
  // sendfile(2) reads only files it can map (not pipes, sockets or
  // terminals): those go through the fallback, from where they stand.
  // Over TLS the bytes must be encrypted: always the fallback (as asyncio).
  const bool native = !self->tls() && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
  if (!native && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && offset != 0)
    throw ValueError("sendfile: offset must be 0 for a file that cannot seek (fd " +
                     std::to_string(file) + ")");

  // sendfile(2) takes no MSG_NOSIGNAL: a peer that went away must be EPIPE.
  if (native) ignore_sigpipe_once();
  co_await begin_sendfile(self);
  SendfileClaim claim{self.get()};
  std::uint64_t sent = 0;
  off_t pos = offset;
  auto short_by = [&](std::uint64_t done) {
    return SendfileError(where_of(file) + ": the file ended at offset " + std::to_string(pos) +
                             ", " + std::to_string(*expected - done) + " bytes short",
                         static_cast<std::size_t>(done));
  };
  bool fallback = !native;
  while (!fallback && (!expected || sent < *expected)) {
    {
      std::lock_guard lock(self->mu_);
      if (self->error_) std::rethrow_exception(self->error_);
      if (self->closed_) throw os_error(ECONNRESET, "sendfile: the connection was closed");
    }
    std::size_t chunk = kMaxSendfile;
    if (expected)
      chunk = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, *expected - sent));
    ssize_t n = ::sendfile(self->fd_, file, &pos, chunk);
    if (n > 0) {
      sent += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) {
      if (expected) throw short_by(sent);
      break;  // EOF of a file read to its end
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      co_await wait_fd(*self->loop_, self->fd_, true);
      continue;
    }
    if (sent == 0 && (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == ESPIPE)) {
      fallback = true;  // this file cannot be sent by sendfile(2) (e.g. a pipe)
      break;
    }
    if (err == EBADF || err == EISDIR) throw_os_error(err, where_of(file));
    auto error = std::make_exception_ptr(os_error(err, self->op_name("sendfile to", "sendfile")));
    self->fail(error);
    std::rethrow_exception(error);
  }
  claim.release();
  if (!fallback) co_return static_cast<std::size_t>(sent);

  // asyncio's fallback: read a chunk, write it, drain; writes by others may
  // interleave here, as in asyncio.
  std::string buf;
  for (;;) {
    std::size_t want = kFallbackChunk;
    if (expected) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, *expected - sent));
    if (want == 0) break;
    buf.resize(want);
    ssize_t n =
        S_ISREG(st.st_mode) ? ::pread(file, buf.data(), want, pos) : ::read(file, buf.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        co_await wait_fd(*self->loop_, file, false);
        continue;
      }
      throw_os_error(errno, where_of(file));
    }
    if (n == 0) {
      if (expected) throw short_by(sent);
      break;
    }
    buf.resize(static_cast<std::size_t>(n));
    pos += n;
    sent += static_cast<std::uint64_t>(n);
    const std::string_view piece(buf);
    self->write({&piece, 1}, nullptr);
    co_await drain(self);
  }
  co_return static_cast<std::size_t>(sent);
}

}  // namespace detail

SendfileError::SendfileError(const std::string& what, std::size_t sent)
    : RuntimeError(what), sent_(sent) {}

Coro<std::size_t> StreamWriter::sendfile(int file, std::int64_t offset,
                                         std::optional<std::int64_t> count) {
  return detail::Transport::sendfile(transport_, file, static_cast<off_t>(offset), count);
}

}  // namespace weft

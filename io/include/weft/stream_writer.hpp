// StreamWriter: asyncio.StreamWriter (docs/api.md, io; STRM-11..13).
//
// A StreamWriter is a cheap copyable handle to one connection (a socket or a
// pipe). The connection closes when close() is called or when the last
// StreamReader/StreamWriter handle of it is dropped.
//
// write() never blocks and never suspends: when nothing is queued it sends at
// once, and whatever the kernel does not take is buffered and flushed by the
// loop that owns the fd. Buffered bytes are a queue of chunks sent with one
// vectored send: a string or vector handed over with std::move is sent from
// its own buffer, never copied; bytes given as a view are copied. drain() waits while more than the
// high-water mark (64 KiB) is buffered, until the buffer falls to the low-water mark (high / 4),
// and raises the connection's error if it broke (STRM-13). Sends use MSG_NOSIGNAL: a peer that goes
// away gives std::system_error (connection_reset / broken_pipe) from drain(), never SIGPIPE.
//
// Threading: every member may be called from any thread and from tasks on
// any worker; calls are serialised by the connection's lock. Handles must not
// outlive the Runtime (or standalone EventLoop) whose loop owns the fd: when
// a runtime shuts down it cancels the tasks holding them, and the fds of
// connections still open are closed with their loops.
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/detail/handle_access.hpp>
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/ssl.hpp>

#include <chrono>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weft {

namespace detail {
class Transport;
class StreamOwner;
}  // namespace detail

/// StreamWriter::sendfile(): the file ended before the bytes expected were
/// sent (it shrank while being sent, or was shorter than the count asked for).
class SendfileError : public RuntimeError {
 public:
  SendfileError(const std::string& what, std::size_t sent);
  /// The bytes that were sent before the file ended.
  std::size_t sent() const noexcept { return sent_; }

 private:
  std::size_t sent_;
};

/// Default flow-control marks (asyncio's): drain() waits above high until low.
inline constexpr std::size_t kDefaultHighWater = 64 * 1024;

class StreamWriter {
 public:
  /// Queues `data`; sends immediately when nothing is buffered. Ignored after
  /// close() or once the connection is lost (as asyncio; drain() reports it).
  /// @throws RuntimeError after write_eof().
  void write(std::string_view data);
  /// A NUL-terminated string (a literal): as write(std::string_view).
  void write(const char* data);
  /// Takes the string over: what the kernel does not take at once is sent
  /// later from the string's own buffer, never copied.
  void write(std::string&& data);
  /// Takes the vector over, as write(std::string&&).
  void write(std::vector<std::byte>&& data);
  /// Writes every line in order as one vectored send (sendmsg, or one
  /// io_uring request) when nothing is buffered; what is not sent at once is
  /// copied.
  void writelines(const std::vector<std::string>& lines);
  /// As above, taking the strings over: nothing is copied.
  void writelines(std::vector<std::string>&& lines);
  /// Sends `count` bytes of the open file `file` from `offset` (count
  /// empty: to its end, for a regular file its size now) without copying
  /// them through user space: sendfile(2), after everything written before
  /// is sent. A file sendfile(2) cannot read (a pipe) is read and written
  /// instead (asyncio's fallback). Returns the bytes sent. Only the file's
  /// own offset argument is used: the fd's file position does not move. While
  /// it runs, write() raises RuntimeError; close() and write_eof() wait for
  /// it. If the awaiting task is cancelled, what was sent stays sent.
  /// @throws ValueError if offset < 0, count <= 0, or offset > 0 for a
  ///         file that cannot seek (a pipe); std::system_error for a
  ///         file that cannot be read (EBADF, EISDIR) or a broken connection;
  ///         SendfileError if the file ends before the bytes expected (it
  ///         shrank while being sent, or was shorter than count);
  ///         RuntimeError after write_eof() or during another sendfile.
  Coro<std::size_t> sendfile(int file, std::int64_t offset = 0,
                             std::optional<std::int64_t> count = std::nullopt);
  /// Waits until the buffer is at or below the low-water mark when it is
  /// above the high-water mark; returns at once otherwise.
  /// @throws std::system_error with the connection's error if it broke, or
  ///         connection_reset if the writer was closed (STRM-12).
  Coro<void> drain();
  /// True for sockets (half-close, TLS ones too); false for pipes.
  bool can_write_eof() const;
  /// Shuts down the sending side once the buffer is flushed (half-close);
  /// reading goes on. On a pipe it closes the pipe. On a TLS connection it
  /// sends close_notify first (the peer's reader sees EOF) and goes on
  /// decrypting what the peer sends (asyncio refuses half-close over TLS).
  void write_eof();
  /// Stops reading, flushes what is buffered, then closes the fd. The paired
  /// reader sees EOF. Idempotent. Over TLS it sends close_notify first and
  /// aborts the connection if the flush takes longer than the
  /// ssl_shutdown_timeout (wait_closed() then throws TimeoutError); it does
  /// not wait for the peer's close_notify.
  void close();
  /// Closes at once, dropping the bytes still buffered (asyncio's
  /// writer.transport.abort()); the paired reader sees EOF and wait_closed()
  /// completes without error. Idempotent; after close() it cuts the flush short.
  void abort();
  /// True from the moment close() is called (or the connection was lost).
  bool is_closing() const;
  /// Completes once the fd is closed.
  /// @throws std::system_error if the connection ended with an error.
  Coro<void> wait_closed();
  /// The bytes buffered and not yet sent.
  std::size_t buffered() const;
  /// Sets the flow-control marks (asyncio's set_write_buffer_limits); low
  /// defaults to high / 4. @throws ValueError if low > high.
  void set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low = {});

  std::optional<Address> peername() const;
  std::optional<Address> sockname() const;
  /// The file descriptor (owned by the connection; -1 once closed).
  int fileno() const;

  /// The TLS details (asyncio's get_extra_info: peercert, cipher, version,
  /// ALPN); empty for a plain connection.
  std::optional<TlsInfo> tls_info() const;
  /// Upgrades the connection to TLS (asyncio 3.11's StreamWriter.start_tls):
  /// waits for the write buffer to drain, then runs the handshake as a client
  /// or a server according to `ctx`. Bytes the reader already holds stay
  /// plaintext; everything after is TLS. `server_hostname` is sent in SNI and
  /// checked (a client context that checks host names needs one). The peer
  /// must not send TLS bytes before this is called (as with asyncio).
  /// @throws SSLError, SSLCertVerificationError, std::system_error
  ///         (connection_reset, connection_aborted after handshake_timeout),
  ///         RuntimeError if the connection already uses TLS, ValueError.
  ///         On failure the connection is closed.
  Coro<void> start_tls(SslContext ctx, std::string server_hostname = {},
                       Duration handshake_timeout = std::chrono::seconds(60),
                       Duration shutdown_timeout = std::chrono::seconds(30));

 private:
  friend struct detail::HandleAccess;
  /// A writer for a connection.
  StreamWriter(std::shared_ptr<detail::Transport> transport,
               std::shared_ptr<detail::StreamOwner> owner);
  std::shared_ptr<detail::Transport> transport_;
  std::shared_ptr<detail::StreamOwner> owner_;
};

}  // namespace weft

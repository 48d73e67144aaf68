// StreamReader: asyncio.StreamReader (docs/api.md, io; STRM-01..10).
//
// A StreamReader is a cheap copyable handle to one shared buffer. The buffer
// is fed by a connection (open_connection, start_server, a subprocess pipe)
// or, for a standalone reader, by feed_data/feed_eof/set_exception.
//
// Threading: every member may be called from any thread and from tasks on
// any worker. At most one task may wait for data at a time (as in asyncio):
// a second concurrent read raises RuntimeError.
//
// Errors follow asyncio exactly:
// - readline(): a line longer than limit() raises ValueError and consumes the
//   overlong data (STRM-03); at EOF a partial line is returned.
// - readexactly(): EOF first raises IncompleteReadError(partial, n) (STRM-05).
// - readuntil(): EOF first raises IncompleteReadError(partial, nullopt)
//   (STRM-07); no separator within the limit raises LimitOverrunError and the
//   data stays buffered (STRM-08).
// - after set_exception(e) (or a connection error) every read rethrows e.
// Cancelling a task waiting in a read leaves the buffer intact.
//
// When the buffer grows past 2 * limit the connection stops reading from the
// socket, and resumes once readers bring it back to limit (asyncio's flow
// control), so a slow reader does not buffer without bound.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/handle_access.hpp>

#include <sys/types.h>

#include <cstddef>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace weft {

namespace detail {
class ReaderState;
class StreamOwner;
}  // namespace detail

/// asyncio's default reader limit: 64 KiB.
inline constexpr std::size_t kDefaultStreamLimit = 64 * 1024;

class StreamReader {
 public:
  /// A standalone reader, fed with feed_data() / feed_eof().
  /// @throws ValueError if limit <= 0 (STRM-10).
  explicit StreamReader(ssize_t limit = static_cast<ssize_t>(kDefaultStreamLimit));

  /// Up to n bytes, waiting only while the buffer is empty; n < 0 reads to
  /// EOF; "" at EOF or for n == 0. Ignores the limit (STRM-01).
  /// When it takes everything buffered the buffer itself is handed over,
  /// without a copy.
  Coro<std::string> read(ssize_t n = -1);
  /// Up to buffer.size() bytes into `buffer`, waiting only while nothing is
  /// buffered: the bytes read (as Python's readinto), 0 at EOF or for an
  /// empty buffer. No allocation: the bytes are copied once, from the
  /// reader's buffer into yours. `buffer` must stay valid until the read
  /// completes; a read cancelled while waiting leaves it untouched. Errors as
  /// read(): the connection's error, RuntimeError for a concurrent read.
  Coro<std::size_t> readinto(std::span<std::byte> buffer);
  /// A view of the buffered bytes, without copying them (Tokio's
  /// AsyncBufRead::fill_buf): waits until at least `min` bytes are buffered
  /// (0: never waits) or EOF, then returns every buffered byte; fewer than
  /// `min` (possibly none) only at EOF. Nothing is consumed: consume(n) drops
  /// the bytes a parser used. The view stays valid until the next call on
  /// this reader other than at_eof/exception/limit (peek, consume, any read);
  /// bytes that arrive meanwhile are kept aside, not appended under it.
  /// A peek cancelled while waiting leaves the buffer intact. Errors as
  /// read(): the connection's error, RuntimeError for a concurrent read.
  Coro<std::string_view> peek(std::size_t min = 1);
  /// Drops the first n buffered bytes (Tokio's consume), ending a peek's view.
  /// @throws ValueError if fewer than n bytes are buffered (nothing dropped).
  void consume(std::size_t n);
  /// Up to and including "\n"; a partial line at EOF; "" at EOF (STRM-02).
  /// @throws ValueError for a line over the limit (the data is consumed, STRM-03).
  Coro<std::string> readline();
  /// Exactly n bytes (STRM-04). @throws ValueError if n < 0,
  /// IncompleteReadError on early EOF (STRM-05).
  Coro<std::string> readexactly(ssize_t n);
  /// Up to and including `separator` (STRM-06).
  /// @throws ValueError for an empty separator, IncompleteReadError at EOF
  /// (STRM-07), LimitOverrunError past the limit (STRM-08).
  Coro<std::string> readuntil(std::string_view separator = "\n");
  /// Python 3.13's tuple form: the match that ends first wins (STRM-06).
  /// @throws ValueError for an empty list or an empty separator.
  Coro<std::string> readuntil(std::vector<std::string> separators);

  /// True once EOF was fed and the buffer is empty (STRM-10).
  bool at_eof() const;
  /// The stored error (null if none).
  std::exception_ptr exception() const;
  std::size_t limit() const noexcept;

  /// Appends bytes and wakes a waiting read. Data after feed_eof is an error
  /// (RuntimeError), as asyncio asserts.
  void feed_data(std::string_view data);
  void feed_eof();
  /// Wakes a waiting read with `error`; every later read rethrows it (STRM-09).
  void set_exception(std::exception_ptr error);

 private:
  friend struct detail::HandleAccess;
  /// A reader bound to a connection (which it keeps open).
  StreamReader(std::shared_ptr<detail::ReaderState> state,
               std::shared_ptr<detail::StreamOwner> owner);
  std::shared_ptr<detail::ReaderState> state_;
  std::shared_ptr<detail::StreamOwner> owner_;  // null for a standalone reader
};

}  // namespace weft

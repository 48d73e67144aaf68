// Files: weft::open_file (docs/api.md, io; docs/networking.md, files).
// aiofiles' `async with aiofiles.open(path, mode) as f` and Tokio's
// tokio::fs::File. Where the calling loop has an io_uring
// (LoopOptions::io_uring, on by default, and a kernel that takes file
// requests) read, write, read_at, write_at, sync and datasync are requests
// on that ring (IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC); every
// other call (open_file, seek, tell, stat, truncate, close), and every call
// on an epoll loop, runs the blocking system call on the loop's default
// executor (the blocking pool). Nothing blocks a worker either way (a ring
// request whose bytes are in the page cache is copied in the loop's
// io_uring_enter, at most 1 MiB per request).
//
//   weft::File f = co_await weft::open_file("data.bin", "r+b");
//   std::string head = co_await f.read_at(0, 16);   // pread: no cursor
//   co_await f.write("appended at the cursor");      // at the cursor, all of it
//   co_await f.sync();
//   co_await f.close();
//
// Order: the calls made on one File run one at a time, in the order they
// were made (one queue per file), so a write, a seek and a read issued one
// after the other by a task see each other's effects. Calls from several
// tasks at once are each whole (a write is never interleaved with another),
// in an unspecified order.
//
// Cancellation (as Tokio's File): a cancelled call that has not started yet
// never starts (a read reads nothing, a write writes nothing, the cursor
// stays). One already running finishes in the background:
// - a read's bytes are kept by the File and returned first by the next
//   cursor read (read()): a cancelled read loses nothing, and the cursor
//   (tell()) stays where the caller last saw it;
// - a write lands whole and moves the cursor past it; the next call on the
//   file runs after it. So after a cancelled write, the data is either all
//   in the file or none of it, and close() waits for it.
// read_at / write_at do not touch the cursor: a cancelled read_at loses
// nothing, a cancelled write_at lands whole or not at all.
//
// Errors: a failed open or call is a std::system_error with the errno and
// the path in its message; the common open failures have Python's OSError
// subclasses (FileNotFoundError, FileExistsError, PermissionError,
// IsADirectoryError, NotADirectoryError), each a std::system_error. A call
// on a closed File, a bad mode, a negative offset or count is a ValueError.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/handle_access.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace weft {

// Python's OSError subclasses for the errnos a file call commonly fails
// with. Each is a std::system_error carrying its errno, so code that catches
// std::system_error (weft's OSError) keeps working.
class FileNotFoundError : public std::system_error {
 public:
  using std::system_error::system_error;
};
class FileExistsError : public std::system_error {
 public:
  using std::system_error::system_error;
};
class PermissionError : public std::system_error {
 public:
  using std::system_error::system_error;
};
class IsADirectoryError : public std::system_error {
 public:
  using std::system_error::system_error;
};
class NotADirectoryError : public std::system_error {
 public:
  using std::system_error::system_error;
};

namespace detail {
class FileState;
}

/// An open file (a handle: copies refer to the same file). The file is
/// closed by close(), or when the last handle and the last call in flight
/// are gone.
class File {
 public:
  /// Not a file: every call raises ValueError, as on a closed File.
  File() = default;

  /// Up to n bytes from the cursor (n < 0: to EOF), fewer only at EOF; ""
  /// at EOF. Moves the cursor past them.
  /// @throws ValueError if the file is closed or not open for reading.
  Coro<std::string> read(std::int64_t n = -1);
  /// Writes all of `data` at the cursor (at the end in append mode) and
  /// moves the cursor past it; returns data.size(). The bytes are copied
  /// before the call suspends; the rvalue overload takes the string over.
  /// @throws ValueError if the file is closed or not open for writing.
  Coro<std::size_t> write(std::string_view data);
  Coro<std::size_t> write(const char* data);
  Coro<std::size_t> write(std::string&& data);
  /// Up to n bytes at `offset` (pread(2)), fewer only at EOF; the cursor
  /// does not move. @throws ValueError for a negative offset or n;
  /// std::system_error (ESPIPE) for a file without offsets (a pipe).
  Coro<std::string> read_at(std::int64_t offset, std::int64_t n);
  /// Writes all of `data` at `offset` (pwrite(2)); the cursor does not move.
  /// @throws ValueError for a negative offset or a file opened in append
  /// mode (Linux would append whatever the offset).
  Coro<std::size_t> write_at(std::int64_t offset, std::string_view data);
  Coro<std::size_t> write_at(std::int64_t offset, const char* data);
  Coro<std::size_t> write_at(std::int64_t offset, std::string&& data);

  /// Moves the cursor (whence: SEEK_SET, SEEK_CUR, SEEK_END); returns the
  /// new position. @throws ValueError for a bad whence or a position before
  /// the start; std::system_error (ESPIPE) for a pipe.
  Coro<std::int64_t> seek(std::int64_t offset, int whence = SEEK_SET);
  /// The cursor's position.
  Coro<std::int64_t> tell();
  /// fsync(2): data and metadata reach the disk (Tokio's sync_all).
  Coro<void> sync();
  /// fdatasync(2): the data reaches the disk (Tokio's sync_data).
  Coro<void> datasync();
  /// fstat(2) (os.fstat).
  Coro<struct ::stat> stat();
  /// The size in bytes.
  Coro<std::int64_t> size();
  /// Cuts or extends the file to `size` bytes (default: the cursor's
  /// position, as Python); the cursor does not move. Returns the new size.
  /// @throws ValueError for a negative size or a file not open for writing.
  Coro<std::int64_t> truncate(std::optional<std::int64_t> size = std::nullopt);
  /// Waits for the calls already made, then closes the fd. Later calls raise
  /// ValueError; a second close() does nothing (as Python).
  /// @throws std::system_error if close(2) reports an error (e.g. EIO).
  Coro<void> close();

  bool closed() const;
  /// The fd, -1 once closed. Use it only between calls on this File.
  int fileno() const;
  const std::string& name() const;
  /// The mode given to open_file.
  const std::string& mode() const;
  bool readable() const;
  bool writable() const;

 private:
  friend struct detail::HandleAccess;
  explicit File(std::shared_ptr<detail::FileState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::FileState> state_;
};

/// Opens `path` with Python's open() modes: one of "r" (read; the file must
/// exist), "w" (write; created or truncated), "a" (append; created), "x"
/// (write; created, FileExistsError if it exists), optionally "+" (read and
/// write) and "b" or "t" (both give bytes: weft does no text decoding).
/// `permissions` is the mode bits of a file it creates (before the umask).
/// The cursor starts at 0, at the end in append mode.
/// @throws ValueError for a bad mode or a path with a NUL byte;
///         FileNotFoundError, PermissionError, IsADirectoryError, ... (all
///         std::system_error) with the path in the message.
Coro<File> open_file(std::string path, std::string mode = "r", int permissions = 0666);

/// The whole file (tokio::fs::read). @throws as open_file.
Coro<std::string> read_file(std::string path);
/// Creates or truncates `path` and writes all of `data` (tokio::fs::write).
/// @throws as open_file.
Coro<void> write_file(std::string path, std::string data);

}  // namespace weft

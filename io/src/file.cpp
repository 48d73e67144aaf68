// weft::File: files on the blocking pool (file.hpp has the contract).
//
// Every call becomes a job on the file's queue (FileState::enqueue): the
// jobs run one at a time, in order, on the loop's default executor, so the
// cursor needs no lock against other jobs. What the awaiting task touches
// too (the cursor, the bytes kept from cancelled reads, each call's
// hand-over slot) is guarded by FileState::mu_, never held across a system
// call.
//
// The cursor: pos_ is where the next read(2)/pread(2) at the cursor starts;
// kept_ holds bytes read from there that no caller received (their read was
// cancelled), so the caller's position is pos_ - kept_.size(). A cursor read
// takes kept_ first; a cursor write or seek drops kept_ (the position it
// stands for is the caller's).
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/executor.hpp>
#include <weft/file.hpp>
#include <weft/offload.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>

namespace weft {
namespace detail {

namespace {

// Python's exception for errno `err`; `what` names the call and the path.
[[noreturn]] void throw_file_error(int err, const std::string& what) {
  const std::error_code code(err, std::generic_category());
  switch (err) {
    case ENOENT:
      throw FileNotFoundError(code, what);
    case EEXIST:
      throw FileExistsError(code, what);
    case EACCES:
    case EPERM:
      throw PermissionError(code, what);
    case EISDIR:
      throw IsADirectoryError(code, what);
    case ENOTDIR:
      throw NotADirectoryError(code, what);
    default:
      throw std::system_error(code, what);
  }
}

std::string quoted(const std::string& path) { return "'" + path + "'"; }

struct OpenFlags {
  int flags = 0;
  bool readable = false;
  bool writable = false;
  bool append = false;
};

// Python's open() mode rules: exactly one of r/w/a/x, at most one '+', at
// most one of b/t, no repeats, nothing else.
OpenFlags parse_mode(const std::string& mode) {
  auto bad = [&](const char* why) -> ValueError {
    return ValueError("invalid mode: '" + mode + "' (" + why + ")");
  };
  int rwax = 0;
  bool plus = false, binary = false, text = false;
  char kind = 0;
  for (char c : mode) {
    switch (c) {
      case 'r':
      case 'w':
      case 'a':
      case 'x':
        ++rwax;
        kind = c;
        break;
      case '+':
        if (plus) throw bad("'+' twice");
        plus = true;
        break;
      case 'b':
        if (binary) throw bad("'b' twice");
        binary = true;
        break;
      case 't':
        if (text) throw bad("'t' twice");
        text = true;
        break;
      default:
        throw bad("unknown character");
    }
  }
  if (rwax != 1) throw bad("must have exactly one of create/read/write/append mode");
  if (binary && text) throw bad("can't have text and binary mode at once");
  OpenFlags out;
  out.readable = kind == 'r' || plus;
  out.writable = kind != 'r' || plus;
  out.append = kind == 'a';
  out.flags = O_CLOEXEC | (out.readable && out.writable ? O_RDWR
                           : out.readable               ? O_RDONLY
                                                        : O_WRONLY);
  if (kind == 'w') out.flags |= O_CREAT | O_TRUNC;
  if (kind == 'a') out.flags |= O_CREAT | O_APPEND;
  if (kind == 'x') out.flags |= O_CREAT | O_EXCL;
  return out;
}

void check_path(const std::string& path) {
  if (path.find('\0') != std::string::npos) throw ValueError("open_file: embedded null byte");
}

// Completes `future` from a pool thread (the cross-thread path wakes the
// awaiting task on its worker); a future cancelled meanwhile ignores it.
template <class T, class F>
void complete(Future<T>& future, F&& fn) {
  try {
    if constexpr (std::is_void_v<T>) {
      fn();
      detail::FutureAccess::state(future)->set_value();
    } else {
      detail::FutureAccess::state(future)->set_value(fn());
    }
  } catch (...) {
    detail::FutureAccess::state(future)->set_exception_ptr(std::current_exception());
  }
}

}  // namespace

class FileState : public std::enable_shared_from_this<FileState> {
 public:
  FileState(int fd, std::string name, std::string mode, OpenFlags flags, bool seekable,
            std::int64_t pos)
      : fd_(fd),
        name_(std::move(name)),
        mode_(std::move(mode)),
        flags_(flags),
        seekable_(seekable),
        pos_(pos) {}
  ~FileState() {
    // Every handle and every job is gone: nobody can use the fd any more.
    if (fd_ >= 0) ::close(fd_);
  }

  const std::string& name() const noexcept { return name_; }
  const std::string& mode() const noexcept { return mode_; }
  const OpenFlags& flags() const noexcept { return flags_; }
  bool seekable() const noexcept { return seekable_; }
  /// The caller's cursor position (what tell() reports).
  std::int64_t position() const {
    std::lock_guard lock(mu_);
    return pos_ - static_cast<std::int64_t>(kept_.size());
  }
  bool closed() const {
    std::lock_guard lock(mu_);
    return closing_;
  }
  int fileno() const {
    std::lock_guard lock(mu_);
    return closing_ ? -1 : fd_;
  }

  /// Raises ValueError if close() was called; `need` checks the mode.
  void check_open(const char* what, int need = 0) const {
    std::lock_guard lock(mu_);
    if (closing_) throw ValueError(std::string(what) + ": I/O operation on closed file");
    if (need == 'r' && !flags_.readable)
      throw ValueError(std::string(what) + ": file " + quoted(name_) + " not open for reading");
    if (need == 'w' && !flags_.writable)
      throw ValueError(std::string(what) + ": file " + quoted(name_) + " not open for writing");
  }

  /// Runs `job(state)` on the file's queue and returns its value.
  template <class T, class F>
  Coro<T> call(const char* what, F job, int need = 0) {
    check_open(what, need);
    Future<T> future = get_running_loop().create_future<T>();
    auto self = shared_from_this();
    enqueue([self, future, job = std::move(job)]() mutable {
      complete(future, [&] { return job(*self); });
    });
    co_return co_await std::move(future);
  }

  // ---- the cursor calls (file.hpp: cancellation)

  Coro<std::string> read(std::int64_t n) {
    check_open("read", 'r');
    // The hand-over slot: the job fills it, the caller takes it. Both sides
    // look at it under mu_, so a read cancelled before, during or after the
    // job keeps its bytes in kept_.
    struct Slot {
      std::string bytes;
      bool abandoned = false;
      bool delivered = false;
    };
    auto slot = std::make_shared<Slot>();
    Future<void> future = get_running_loop().create_future<void>();
    auto self = shared_from_this();
    enqueue(
        [self, slot, future, n]() mutable { complete(future, [&] { self->read_job(*slot, n); }); });
    try {
      co_await std::move(future);
    } catch (...) {
      std::lock_guard lock(mu_);
      slot->abandoned = true;
      if (slot->delivered) kept_.insert(0, slot->bytes);
      throw;
    }
    std::lock_guard lock(mu_);
    co_return std::move(slot->bytes);
  }

  template <class Slot>
  void read_job(Slot& slot, std::int64_t n) {
    std::string out;
    std::int64_t at;
    {
      std::lock_guard lock(mu_);
      if (slot.abandoned) return;  // cancelled before it started: nothing read
      std::size_t from_kept =
          n < 0 ? kept_.size() : std::min(kept_.size(), static_cast<std::size_t>(n));
      out.assign(kept_, 0, from_kept);
      kept_.erase(0, from_kept);
      at = pos_;
    }
    std::int64_t fresh = 0;  // bytes the system calls read into `out`
    std::exception_ptr error;
    try {
      read_more(out, at, n, fresh);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(mu_);
    if (error && seekable_) {
      // The cursor stays before the fresh bytes: the next read reads them
      // again, so only the kept ones go back.
      out.resize(out.size() - static_cast<std::size_t>(fresh));
      fresh = 0;
    }
    pos_ = at + fresh;
    if (slot.abandoned || error) {
      // Nobody takes these bytes now: keep them for the next cursor read.
      kept_.insert(0, out);
      if (error) std::rethrow_exception(error);
      return;
    }
    slot.bytes = std::move(out);
    slot.delivered = true;
  }

  /// Appends to `out`, reading from `at` (pread; read(2) for a pipe), until
  /// it holds n bytes (n < 0: to EOF) or EOF; `fresh` counts what was read.
  void read_more(std::string& out, std::int64_t at, std::int64_t n, std::int64_t& fresh) {
    for (;;) {
      std::size_t want;
      if (n >= 0) {
        if (out.size() >= static_cast<std::size_t>(n)) return;
        // Grow towards n without reserving all of a huge n up front.
        want = std::min<std::size_t>(static_cast<std::size_t>(n) - out.size(),
                                     std::max<std::size_t>(out.size(), 64 * 1024));
      } else {
        want = std::max<std::size_t>(out.size(), 64 * 1024);
      }
      const std::size_t old = out.size();
      out.resize(old + want);
      ssize_t r = seekable_ ? ::pread(fd_, out.data() + old, want, at + fresh)
                            : ::read(fd_, out.data() + old, want);
      out.resize(old + static_cast<std::size_t>(std::max<ssize_t>(r, 0)));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw_file_error(errno, "read " + quoted(name_));
      }
      fresh += r;
      if (r == 0) return;  // EOF
    }
  }

  /// Up to n bytes at `offset`, fewer only at EOF (read_at).
  std::string pread_all(std::int64_t offset, std::int64_t n) {
    if (!seekable_) throw_file_error(ESPIPE, "read_at " + quoted(name_));
    std::string out;
    while (out.size() < static_cast<std::size_t>(n)) {
      const std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(n) - out.size(),
                                                     std::max<std::size_t>(out.size(), 64 * 1024));
      const std::size_t old = out.size();
      out.resize(old + want);
      ssize_t r = ::pread(fd_, out.data() + old, want, offset + static_cast<std::int64_t>(old));
      out.resize(old + static_cast<std::size_t>(std::max<ssize_t>(r, 0)));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw_file_error(errno, "read_at " + quoted(name_));
      }
      if (r == 0) break;  // EOF
    }
    return out;
  }

  Coro<std::size_t> write(std::string data) {
    check_open("write", 'w');
    const std::size_t size = data.size();
    Future<void> future = get_running_loop().create_future<void>();
    auto self = shared_from_this();
    // Once queued, the write runs even if the caller is cancelled (the job
    // owns the bytes): a cancelled write is all in the file or not at all.
    enqueue([self, future, data = std::move(data)]() mutable {
      complete(future, [&] { self->write_job(data); });
    });
    co_await std::move(future);
    co_return size;
  }

  void write_job(const std::string& data) {
    std::size_t done = 0;
    if (flags_.append || !seekable_) {
      std::exception_ptr error;
      try {
        write_all(data, -1, done);
      } catch (...) {
        error = std::current_exception();
      }
      if (seekable_) {
        // O_APPEND: the kernel's offset is the end of what was written.
        const off_t end = ::lseek(fd_, 0, SEEK_CUR);
        std::lock_guard lock(mu_);
        if (end >= 0) pos_ = end;
        kept_.clear();
      }
      if (error) std::rethrow_exception(error);
      return;
    }
    std::int64_t at;
    {
      std::lock_guard lock(mu_);
      at = pos_ - static_cast<std::int64_t>(kept_.size());
      kept_.clear();
      pos_ = at;
    }
    std::exception_ptr error;
    try {
      write_all(data, at, done);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard lock(mu_);
      pos_ = at + static_cast<std::int64_t>(done);  // past what landed, also on an error
    }
    if (error) std::rethrow_exception(error);
  }

  /// Writes all of `data` at `at` (pwrite), or with write(2) when at < 0;
  /// `done` counts the bytes written (also when it throws).
  void write_all(std::string_view data, std::int64_t at, std::size_t& done) {
    while (done < data.size()) {
      ssize_t r = at >= 0 ? ::pwrite(fd_, data.data() + done, data.size() - done,
                                     at + static_cast<std::int64_t>(done))
                          : ::write(fd_, data.data() + done, data.size() - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        throw_file_error(errno, "write " + quoted(name_));
      }
      done += static_cast<std::size_t>(r);
    }
  }

  Coro<std::int64_t> seek(std::int64_t offset, int whence) {
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
      throw ValueError("seek: invalid whence (" + std::to_string(whence) +
                       ", should be SEEK_SET, SEEK_CUR or SEEK_END)");
    if (whence == SEEK_SET && offset < 0)
      throw ValueError("seek: negative seek position " + std::to_string(offset));
    co_return co_await call<std::int64_t>("seek", [offset, whence](FileState& s) {
      if (!s.seekable_) throw_file_error(ESPIPE, "seek " + quoted(s.name_));
      std::int64_t base = 0;
      if (whence == SEEK_CUR) {
        std::lock_guard lock(s.mu_);
        base = s.pos_ - static_cast<std::int64_t>(s.kept_.size());
      } else if (whence == SEEK_END) {
        struct ::stat st {};
        if (::fstat(s.fd_, &st) < 0) throw_file_error(errno, "seek " + quoted(s.name_));
        base = st.st_size;
      }
      const std::int64_t target = base + offset;
      if (target < 0)
        throw ValueError("seek: position " + std::to_string(target) + " is before the start");
      std::lock_guard lock(s.mu_);
      s.pos_ = target;
      s.kept_.clear();
      return target;
    });
  }

  Coro<std::int64_t> tell() {
    co_return co_await call<std::int64_t>("tell", [](FileState& s) {
      if (!s.seekable_) throw_file_error(ESPIPE, "tell " + quoted(s.name_));
      std::lock_guard lock(s.mu_);
      return s.pos_ - static_cast<std::int64_t>(s.kept_.size());
    });
  }

  Coro<void> close() {
    {
      std::lock_guard lock(mu_);
      if (closing_) co_return;
      closing_ = true;
    }
    // Behind every call already queued (a cancelled write included).
    Future<void> future = get_running_loop().create_future<void>();
    auto self = shared_from_this();
    enqueue([self, future]() mutable {
      complete(future, [&] {
        int fd;
        {
          std::lock_guard lock(self->mu_);  // fileno() reads it under the lock
          fd = std::exchange(self->fd_, -1);
        }
        // close(2) releases the fd even when it reports an error (Linux):
        // never retried.
        if (::close(fd) < 0 && errno != EINTR)
          throw_file_error(errno, "close " + quoted(self->name_));
      });
    });
    co_await std::move(future);
  }

  // ---- the file's queue

  void enqueue(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
      if (draining_) return;
      draining_ = true;
    }
    EventLoop& loop = get_running_loop();
    try {
      loop.default_executor()->submit([self = shared_from_this()] { self->drain(); });
    } catch (...) {
      // The pool is shut down: nothing drains the queue, which held only
      // this job (draining_ was false).
      std::lock_guard lock(mu_);
      jobs_.clear();
      draining_ = false;
      throw;
    }
    expect_offload_completion(loop);
  }

  void drain() {
    for (;;) {
      std::function<void()> job;
      {
        std::lock_guard lock(mu_);
        if (jobs_.empty()) {
          draining_ = false;
          return;
        }
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  // The fd: replaced by -1 (under mu_) only by the close job, which runs
  // after every other job, so the jobs read it without the lock.
  int fd_;

 private:
  const std::string name_;
  const std::string mode_;
  const OpenFlags flags_;
  const bool seekable_;  // false for pipes, FIFOs, ttys: read(2)/write(2), no offsets

  mutable std::mutex mu_;
  bool closing_ = false;                    // guarded by mu_
  std::int64_t pos_;                        // guarded by mu_
  std::string kept_;                        // guarded by mu_
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool draining_ = false;                   // guarded by mu_: a drain() is queued or running
};

}  // namespace detail

namespace {
void check_offset(const char* what, std::int64_t offset) {
  if (offset < 0)
    throw ValueError(std::string(what) + ": negative offset " + std::to_string(offset));
}
detail::FileState& state_or_closed(const std::shared_ptr<detail::FileState>& state,
                                   const char* what) {
  if (!state) throw ValueError(std::string(what) + ": I/O operation on closed file");
  return *state;
}

// A FileState's coroutines refer to it by `this`: the wrapper's frame holds
// the state from the call on, so a File dropped before the await is safe.
template <class T>
Coro<T> pinned([[maybe_unused]] std::shared_ptr<detail::FileState> self, Coro<T> inner) {
  co_return co_await std::move(inner);
}
Coro<void> pinned([[maybe_unused]] std::shared_ptr<detail::FileState> self, Coro<void> inner) {
  co_await std::move(inner);
}
}  // namespace

Coro<File> open_file(std::string path, std::string mode, int permissions) {
  detail::check_path(path);
  const detail::OpenFlags flags = detail::parse_mode(mode);
  if (permissions < 0 || permissions > 07777)
    throw ValueError("open_file: permissions " + std::to_string(permissions) +
                     " outside 0 to 07777");
  auto open = [path, mode, flags, permissions]() -> File {
    int fd;
    do {
      fd = ::open(path.c_str(), flags.flags, permissions);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) detail::throw_file_error(errno, "open " + detail::quoted(path));
    struct ::stat st {};
    if (::fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
      // open(2) accepts a directory read-only; Python refuses it.
      const int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
      ::close(fd);
      detail::throw_file_error(err, "open " + detail::quoted(path));
    }
    const off_t start = ::lseek(fd, 0, flags.append ? SEEK_END : SEEK_CUR);
    const bool seekable = start >= 0;
    return detail::HandleAccess::make<File>(
        std::make_shared<detail::FileState>(fd, path, mode, flags, seekable, seekable ? start : 0));
  };
  co_return co_await get_running_loop().run_in_executor(nullptr, std::move(open));
}

Coro<std::string> read_file(std::string path) {
  File f = co_await open_file(path, "rb");
  // On an error the fd closes when the last handle goes.
  std::string data = co_await f.read();
  co_await f.close();
  co_return data;
}

Coro<void> write_file(std::string path, std::string data) {
  File f = co_await open_file(path, "wb");
  co_await f.write(std::move(data));
  co_await f.close();
}

Coro<std::string> File::read(std::int64_t n) {
  return pinned(state_, state_or_closed(state_, "read").read(n));
}
Coro<std::size_t> File::write(std::string_view data) {
  return pinned(state_, state_or_closed(state_, "write").write(std::string(data)));
}
Coro<std::size_t> File::write(const char* data) {
  return pinned(state_, state_or_closed(state_, "write").write(std::string(data)));
}
Coro<std::size_t> File::write(std::string&& data) {
  return pinned(state_, state_or_closed(state_, "write").write(std::move(data)));
}

Coro<std::string> File::read_at(std::int64_t offset, std::int64_t n) {
  detail::FileState& s = state_or_closed(state_, "read_at");
  check_offset("read_at", offset);
  if (n < 0) throw ValueError("read_at: negative count " + std::to_string(n));
  // Nothing shared moves: a cancelled read_at drops bytes the file still has.
  return pinned(
      state_,
      s.call<std::string>(
          "read_at", [offset, n](detail::FileState& st) { return st.pread_all(offset, n); }, 'r'));
}

Coro<std::size_t> File::write_at(std::int64_t offset, std::string_view data) {
  return write_at(offset, std::string(data));
}

Coro<std::size_t> File::write_at(std::int64_t offset, const char* data) {
  return write_at(offset, std::string(data));
}

Coro<std::size_t> File::write_at(std::int64_t offset, std::string&& data) {
  detail::FileState& s = state_or_closed(state_, "write_at");
  check_offset("write_at", offset);
  if (s.flags().append)
    throw ValueError("write_at: file " + detail::quoted(s.name()) +
                     " is open in append mode (every write goes to its end)");
  return pinned(state_, s.call<std::size_t>(
                            "write_at",
                            [offset, data = std::move(data)](detail::FileState& st) {
                              std::size_t done = 0;
                              if (!st.seekable())
                                detail::throw_file_error(ESPIPE,
                                                         "write_at " + detail::quoted(st.name()));
                              st.write_all(data, offset, done);
                              return done;
                            },
                            'w'));
}

Coro<std::int64_t> File::seek(std::int64_t offset, int whence) {
  return pinned(state_, state_or_closed(state_, "seek").seek(offset, whence));
}
Coro<std::int64_t> File::tell() { return pinned(state_, state_or_closed(state_, "tell").tell()); }

Coro<void> File::sync() {
  return pinned(state_,
                state_or_closed(state_, "sync").call<void>("sync", [](detail::FileState& st) {
                  if (::fsync(st.fd_) < 0)
                    detail::throw_file_error(errno, "fsync " + detail::quoted(st.name()));
                }));
}

Coro<void> File::datasync() {
  return pinned(
      state_, state_or_closed(state_, "datasync").call<void>("datasync", [](detail::FileState& st) {
        if (::fdatasync(st.fd_) < 0)
          detail::throw_file_error(errno, "fdatasync " + detail::quoted(st.name()));
      }));
}

Coro<struct ::stat> File::stat() {
  return pinned(
      state_,
      state_or_closed(state_, "stat").call<struct ::stat>("stat", [](detail::FileState& st) {
        struct ::stat out {};
        if (::fstat(st.fd_, &out) < 0)
          detail::throw_file_error(errno, "fstat " + detail::quoted(st.name()));
        return out;
      }));
}

Coro<std::int64_t> File::size() {
  struct ::stat st = co_await stat();
  co_return static_cast<std::int64_t>(st.st_size);
}

Coro<std::int64_t> File::truncate(std::optional<std::int64_t> size) {
  detail::FileState& s = state_or_closed(state_, "truncate");
  if (size && *size < 0) throw ValueError("truncate: negative size " + std::to_string(*size));
  return pinned(state_, s.call<std::int64_t>(
                            "truncate",
                            [size](detail::FileState& st) {
                              const std::int64_t to = size ? *size : st.position();
                              int rc;
                              do {
                                rc = ::ftruncate(st.fd_, to);
                              } while (rc < 0 && errno == EINTR);
                              if (rc < 0)
                                detail::throw_file_error(errno,
                                                         "truncate " + detail::quoted(st.name()));
                              return to;
                            },
                            'w'));
}

Coro<void> File::close() {
  if (!state_) co_return;
  co_await state_->close();
}

bool File::closed() const { return !state_ || state_->closed(); }
int File::fileno() const { return state_ ? state_->fileno() : -1; }
const std::string& File::name() const {
  static const std::string none;
  return state_ ? state_->name() : none;
}
const std::string& File::mode() const {
  static const std::string none;
  return state_ ? state_->mode() : none;
}
bool File::readable() const { return state_ && state_->flags().readable; }
bool File::writable() const { return state_ && state_->flags().writable; }

}  // namespace weft

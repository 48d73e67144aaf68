// weft::File: files through the loop's io_uring or the blocking pool
// (file.hpp has the contract).
//
// Every call becomes a job on the file's queue (FileState::enqueue): the
// jobs run one at a time, in order, so the cursor needs no lock against
// other jobs. Whoever runs the queue holds it (draining_) until it is
// empty: a pool thread runs job after job; on a loop's thread a read,
// write or sync made on that loop (an IoJob) goes to its ring, and the
// job's last completion, on that thread, runs the queue on; any other job
// goes to the pool, which takes the rest of the queue with it. What the
// awaiting task touches too (the cursor, the bytes kept from cancelled
// reads, each call's hand-over slot) is guarded by FileState::mu_, never
// held across a system call or a request.
//
// The cursor: pos_ is where the next read(2)/pread(2) at the cursor starts;
// kept_ holds bytes read from there that no caller received (their read was
// cancelled), so the caller's position is pos_ - kept_.size(). A cursor read
// takes kept_ first; a cursor write or seek drops kept_ (the position it
// stands for is the caller's).
#include <weft/detail/loop_reactor.hpp>
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/executor.hpp>
#include <weft/file.hpp>
#include <weft/offload.hpp>
#include <weft/reactor/io_ring.hpp>
#include <weft/reactor/selector.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
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

class FileState;

// The most one request reads or writes. On the ring, a request whose bytes
// are in the page cache is copied inside the loop's io_uring_enter, on the
// loop's thread: 1 MiB bounds what one loop iteration spends on it (about
// 0.1 ms) between its other callbacks. On the pool a request is one system
// call (the kernel stops near 2 GiB anyway).
constexpr std::size_t kRingRequest = std::size_t{1} << 20;
constexpr std::size_t kBlockingRequest = std::size_t{1} << 30;

// One call on a file's queue (FileState::enqueue). run_blocking() runs it
// with blocking system calls on the pool; the reads, writes and syncs are
// IoJobs, which run through the loop's io_uring instead where they can.
class FileJob {
 public:
  virtual ~FileJob() = default;
  /// Runs the call to its end and completes its future (never throws).
  virtual void run_blocking(FileState& s) noexcept = 0;
  /// The loop the call was made on: an IoJob goes to that loop's ring, and
  /// only when the queue reaches it on that loop's thread (the pointer is
  /// compared, never followed, since that loop may be gone by then).
  EventLoop* origin = nullptr;
  bool ring_capable = false;
};

// A call that is one lambda on the pool (seek, tell, stat, truncate, close).
template <class F>
class BlockingJob final : public FileJob {
 public:
  explicit BlockingJob(F fn) : fn_(std::move(fn)) {}
  void run_blocking(FileState&) noexcept override { fn_(); }

 private:
  F fn_;
};

// What a read hands over: the job fills it, the caller takes it. Both sides
// look at it under FileState::mu_, so a cursor read cancelled before,
// during or after the job keeps its bytes in kept_.
struct ReadSlot {
  std::string bytes;
  bool abandoned = false;
  bool delivered = false;
};

// A read, write or sync: a series of requests, each a system call on the
// pool (run_blocking) or an io_uring request on the loop's ring (start,
// then complete() for each). The state below is the call's progress, so a
// call that began on the ring can go on on the pool (when the ring refuses
// a request) from where it stands.
//
// Lifetime on the ring: from start() until its last completion the job owns
// itself (the queue let go of it) and holds the FileState, so the buffer a
// request reads into or writes from, and the fd, outlive the request. It is
// never cancelled (a cancelled read's bytes are kept, a cancelled write
// lands whole: file.hpp), so each request ends with its real result; if the
// ring goes away first (its loop is destroyed), abandon() fails the call.
class IoJob final : public FileJob, public IoOp {
 public:
  enum class Kind { cursor_read, read_at, cursor_write, write_at, fsync, fdatasync };

  IoJob(std::shared_ptr<FileState> state, Kind kind, Future<void> future)
      : state_(std::move(state)), kind_(kind), future_(std::move(future)) {
    ring_capable = true;
  }

  // Parameters, set before the job is queued.
  std::shared_ptr<ReadSlot> slot;  // reads
  std::int64_t want = -1;          // reads: bytes wanted (< 0: to EOF)
  std::int64_t at = 0;             // read_at / write_at: the offset
  std::string data;                // writes: the bytes; reads: what was read

  void run_blocking(FileState& s) noexcept override;
  /// issued: a request is out on `ring` (the calling loop's, on its thread):
  /// the job owns itself from now on, and its last completion runs the queue
  /// on. finished: done without a request (the future is completed).
  /// refused: the ring took no request; run_blocking() goes on from here.
  enum class Start { issued, finished, refused };
  Start start(IoRing& ring) noexcept;

  void complete(int res, std::uint32_t flags) noexcept override;
  void abandon() noexcept override;

 private:
  struct Request {
    char* buf = nullptr;
    std::size_t len = 0;
    std::int64_t offset = -1;  // -1: at the file position (read(2), write(2))
    std::size_t old = 0;       // reads: data's size before next() grew it
  };
  bool is_read() const noexcept { return kind_ == Kind::cursor_read || kind_ == Kind::read_at; }
  bool is_write() const noexcept { return kind_ == Kind::cursor_write || kind_ == Kind::write_at; }
  const char* what() const noexcept;
  /// Claims the cursor and checks the call (under mu_). False: no request
  /// is needed (a read cancelled before it started, or satisfied by the
  /// kept bytes; an error).
  bool begin();
  /// True while another request is needed.
  bool more() const noexcept;
  /// Sets rq_ to the next request, of at most `max_len` bytes (a read grows
  /// `data` for it: nothing else touches `data` until apply()).
  void next(std::size_t max_len);
  /// Takes rq_'s result: `r` bytes (>= 0), or the errno `err`.
  void apply(ssize_t r, int err);
  /// Hands the result over (under mu_) and completes the future.
  void finish() noexcept;
  /// Issues rq_ on ring_. @throws std::system_error (the SQ is full and the
  /// kernel takes nothing), with `data` as it was.
  void issue();
  /// After the last request: finishes, lets go of itself and runs the queue on.
  void done() noexcept;

  std::shared_ptr<FileState> state_;
  const Kind kind_;
  Future<void> future_;
  IoRing* ring_ = nullptr;  // while the job runs on a ring
  Request rq_;              // the request in flight (or last made)
  bool begun_ = false;      // begin() ran
  bool claimed_ = false;    // cursor calls: begin() took the cursor (base_ is pos_)
  bool offsets_ = false;    // requests carry offsets (else: the file position)
  std::int64_t base_ = 0;   // where the call's first request starts
  std::size_t done_ = 0;    // bytes read or written by requests
  bool synced_ = false;     // syncs: the request succeeded
  bool eof_ = false;        // reads: a request returned 0
  std::exception_ptr error_;
};

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

  /// Runs `job(state)` on the file's queue, on the pool, and returns its value.
  template <class T, class F>
  Coro<T> call(const char* what, F job, int need = 0) {
    check_open(what, need);
    Future<T> future = get_running_loop().create_future<T>();
    auto self = shared_from_this();
    auto fn = [self, future, job = std::move(job)]() mutable {
      complete(future, [&] { return job(*self); });
    };
    enqueue(std::make_unique<BlockingJob<decltype(fn)>>(std::move(fn)));
    co_return co_await std::move(future);
  }

  // ---- reads and writes (file.hpp: cancellation)

  /// A cursor read (at < 0) or a read_at.
  Coro<std::string> read(std::int64_t n, std::int64_t at = -1) {
    const bool cursor = at < 0;
    check_open(cursor ? "read" : "read_at", 'r');
    auto slot = std::make_shared<ReadSlot>();
    Future<void> future = get_running_loop().create_future<void>();
    auto job = std::make_unique<IoJob>(
        shared_from_this(), cursor ? IoJob::Kind::cursor_read : IoJob::Kind::read_at, future);
    job->slot = slot;
    job->want = n;
    job->at = at;
    enqueue(std::move(job));
    try {
      co_await std::move(future);
    } catch (...) {
      std::lock_guard lock(mu_);
      slot->abandoned = true;
      // A read_at's bytes are still in the file: only the cursor's go back.
      if (cursor && slot->delivered) kept_.insert(0, slot->bytes);
      throw;
    }
    std::lock_guard lock(mu_);
    co_return std::move(slot->bytes);
  }

  /// A cursor write (at < 0) or a write_at. Once queued, the write runs even
  /// if the caller is cancelled (the job owns the bytes): a cancelled write
  /// is all in the file or not at all.
  Coro<std::size_t> write(std::string data, std::int64_t at = -1) {
    const bool cursor = at < 0;
    check_open(cursor ? "write" : "write_at", 'w');
    const std::size_t size = data.size();
    Future<void> future = get_running_loop().create_future<void>();
    auto job = std::make_unique<IoJob>(
        shared_from_this(), cursor ? IoJob::Kind::cursor_write : IoJob::Kind::write_at, future);
    job->data = std::move(data);
    job->at = at;
    enqueue(std::move(job));
    co_await std::move(future);
    co_return size;
  }

  /// fsync(2) or fdatasync(2).
  Coro<void> sync(bool datasync) {
    check_open(datasync ? "datasync" : "sync");
    Future<void> future = get_running_loop().create_future<void>();
    enqueue(std::make_unique<IoJob>(
        shared_from_this(), datasync ? IoJob::Kind::fdatasync : IoJob::Kind::fsync, future));
    co_await std::move(future);
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
    auto fn = [self, future]() mutable {
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
    };
    enqueue(std::make_unique<BlockingJob<decltype(fn)>>(std::move(fn)));
    co_await std::move(future);
  }

  // ---- the file's queue

  void enqueue(std::unique_ptr<FileJob> job) {
    job->origin = &get_running_loop();
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
      if (draining_) return;
      draining_ = true;
    }
    run_queue(false);
  }

  /// Runs the queue on from its front; the caller holds the queue (draining_
  /// is set for it). On the pool (`on_pool`) every job runs here, one after
  /// the other. On a loop's thread an IoJob made on this loop starts on its
  /// ring, and the first other job goes to the pool with the rest of the
  /// queue; either way the queue is then held by what runs that job (the
  /// IoJob's last completion, the pool thread), which calls this again.
  void run_queue(bool on_pool) noexcept {
    for (;;) {
      std::unique_ptr<FileJob> job;
      {
        std::lock_guard lock(mu_);
        if (jobs_.empty()) {
          draining_ = false;
          return;
        }
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (on_pool) {
        job->run_blocking(*this);
        continue;
      }
      EventLoop* loop = current_loop();
      if (job->ring_capable && loop && job->origin == loop) {
        if (IoRing* ring = file_ring(*loop)) {
          auto& io = static_cast<IoJob&>(*job);
          const IoJob::Start started = io.start(*ring);
          if (started == IoJob::Start::issued) {
            static_cast<void>(job.release());  // it owns itself until its last completion
            return;
          }
          if (started == IoJob::Start::finished) continue;
          // refused: the pool runs it from where it stands
        }
      }
      std::shared_ptr<FileJob> shared(std::move(job));
      if (loop && to_pool(*loop, shared, shared->origin == loop)) return;
      // No pool (shut down: the runtime is ending): the job runs here, so
      // that no call is lost, and the queue goes on with the next.
      shared->run_blocking(*this);
    }
  }

  /// Hands `job` and the queue after it to `loop`'s default executor; false
  /// if the executor refuses it. `expect`: the call was made on this loop
  /// (its park spins briefly for the result).
  bool to_pool(EventLoop& loop, const std::shared_ptr<FileJob>& job, bool expect) noexcept {
    try {
      loop.default_executor()->submit([self = shared_from_this(), job] {
        job->run_blocking(*self);
        self->run_queue(true);
      });
    } catch (...) {
      return false;
    }
    if (expect) expect_offload_completion(loop);
    return true;
  }

  // The fd: replaced by -1 (under mu_) only by the close job, which runs
  // after every other job, so the jobs read it without the lock.
  int fd_;

 private:
  friend class IoJob;
  /// The loop's ring where it can take file requests (on the loop's thread).
  static IoRing* file_ring(EventLoop& loop) noexcept {
    try {
      IoRing* ring = loop_selector(loop).io_ring();
      return ring && ring->file_io() ? ring : nullptr;
    } catch (...) {
      return nullptr;
    }
  }

  const std::string name_;
  const std::string mode_;
  const OpenFlags flags_;
  const bool seekable_;  // false for pipes, FIFOs, ttys: read(2)/write(2), no offsets

  mutable std::mutex mu_;
  bool closing_ = false;                       // guarded by mu_
  std::int64_t pos_;                           // guarded by mu_
  std::string kept_;                           // guarded by mu_
  std::deque<std::unique_ptr<FileJob>> jobs_;  // guarded by mu_
  bool draining_ = false;  // guarded by mu_: somebody runs the queue (file.cpp, run_queue)
};

// ---- IoJob

const char* IoJob::what() const noexcept {
  switch (kind_) {
    case Kind::cursor_read:
      return "read";
    case Kind::read_at:
      return "read_at";
    case Kind::cursor_write:
      return "write";
    case Kind::write_at:
      return "write_at";
    case Kind::fsync:
      return "fsync";
    case Kind::fdatasync:
      return "fdatasync";
  }
  return "file call";
}

bool IoJob::begin() {
  FileState& s = *state_;
  begun_ = true;
  try {
    switch (kind_) {
      case Kind::cursor_read: {
        std::lock_guard lock(s.mu_);
        if (slot->abandoned) return false;  // cancelled before it started: nothing read
        const std::size_t from_kept =
            want < 0 ? s.kept_.size() : std::min(s.kept_.size(), static_cast<std::size_t>(want));
        data.assign(s.kept_, 0, from_kept);
        s.kept_.erase(0, from_kept);
        claimed_ = true;
        base_ = s.pos_;
        offsets_ = s.seekable_;
        return true;
      }
      case Kind::read_at: {
        {
          std::lock_guard lock(s.mu_);
          if (slot->abandoned) return false;
        }
        if (!s.seekable_) throw_file_error(ESPIPE, "read_at " + quoted(s.name_));
        base_ = at;
        offsets_ = true;
        return true;
      }
      case Kind::cursor_write: {
        // O_APPEND, or a pipe: at the file position (the end, in append mode).
        if (s.flags_.append || !s.seekable_) return true;
        std::lock_guard lock(s.mu_);
        base_ = s.pos_ - static_cast<std::int64_t>(s.kept_.size());
        s.kept_.clear();
        s.pos_ = base_;
        claimed_ = true;
        offsets_ = true;
        return true;
      }
      case Kind::write_at:
        if (!s.seekable_) throw_file_error(ESPIPE, "write_at " + quoted(s.name_));
        base_ = at;
        offsets_ = true;
        return true;
      case Kind::fsync:
      case Kind::fdatasync:
        return true;
    }
  } catch (...) {
    error_ = std::current_exception();
  }
  return false;
}

bool IoJob::more() const noexcept {
  if (error_) return false;
  if (is_read()) return !eof_ && (want < 0 || data.size() < static_cast<std::size_t>(want));
  if (is_write()) return done_ < data.size();
  return !synced_;
}

void IoJob::next(std::size_t max_len) {
  rq_ = Request{};
  if (is_read()) {
    // Grow towards `want` without reserving all of a huge one up front (the
    // string is zero-filled as it grows): up to 1 MiB at once, then as much
    // again as it holds; to EOF from 64 KiB.
    const std::size_t have = data.size();
    const std::size_t len = std::min(want < 0 ? std::max<std::size_t>(have, 64 * 1024)
                                              : std::min(static_cast<std::size_t>(want) - have,
                                                         std::max<std::size_t>(have, 1 << 20)),
                                     max_len);
    data.resize(have + len);
    rq_ = {data.data() + have, len, -1, have};
  } else if (is_write()) {
    rq_ = {data.data() + done_, std::min(data.size() - done_, max_len), -1, 0};
  }
  if (offsets_) rq_.offset = base_ + static_cast<std::int64_t>(done_);
}

void IoJob::apply(ssize_t r, int err) {
  if (is_read()) data.resize(rq_.old + static_cast<std::size_t>(std::max<ssize_t>(r, 0)));
  // EINTR: a signal (the pool); ECANCELED: the thread that submitted the
  // request exited (io_ring.hpp), it did nothing. Both: made again.
  if (err == EINTR || err == ECANCELED) return;
  if (err == 0 && r == 0 && is_write()) err = EIO;  // no progress: never loop on it
  if (err != 0) {
    try {
      throw_file_error(err, std::string(what()) + " " + quoted(state_->name_));
    } catch (...) {
      error_ = std::current_exception();
    }
    return;
  }
  if (is_read() || is_write()) {
    done_ += static_cast<std::size_t>(r);
    if (r == 0) eof_ = true;
  } else {
    synced_ = true;
  }
}

void IoJob::finish() noexcept {
  FileState& s = *state_;
  switch (kind_) {
    case Kind::cursor_read: {
      std::lock_guard lock(s.mu_);
      if (!claimed_) break;  // cancelled before it started
      if (error_ && offsets_) {
        // The cursor stays before the requests' bytes: the next read reads
        // them again, so only the kept ones go back.
        data.resize(data.size() - done_);
        done_ = 0;
      }
      s.pos_ = base_ + static_cast<std::int64_t>(done_);
      if (slot->abandoned || error_) {
        // Nobody takes these bytes now: keep them for the next cursor read.
        s.kept_.insert(0, data);
      } else {
        slot->bytes = std::move(data);
        slot->delivered = true;
      }
      break;
    }
    case Kind::read_at: {
      std::lock_guard lock(s.mu_);
      if (!error_ && !slot->abandoned) {
        slot->bytes = std::move(data);
        slot->delivered = true;
      }
      break;
    }
    case Kind::cursor_write: {
      if (claimed_) {
        std::lock_guard lock(s.mu_);
        s.pos_ = base_ + static_cast<std::int64_t>(done_);  // past what landed, also on an error
      } else if (s.seekable_) {
        // O_APPEND: the kernel's offset is the end of what was written.
        const off_t end = ::lseek(s.fd_, 0, SEEK_CUR);
        std::lock_guard lock(s.mu_);
        if (end >= 0) s.pos_ = end;
        s.kept_.clear();
      }
      break;
    }
    case Kind::write_at:
    case Kind::fsync:
    case Kind::fdatasync:
      break;
  }
  detail::complete(future_, [&] {
    if (error_) std::rethrow_exception(error_);
  });
}

void IoJob::run_blocking(FileState& s) noexcept {
  if (!begun_ && !begin()) return finish();
  while (more()) {
    next(kBlockingRequest);
    ssize_t r = 0;
    switch (kind_) {
      case Kind::cursor_read:
      case Kind::read_at:
        r = rq_.offset >= 0 ? ::pread(s.fd_, rq_.buf, rq_.len, rq_.offset)
                            : ::read(s.fd_, rq_.buf, rq_.len);
        break;
      case Kind::cursor_write:
      case Kind::write_at:
        r = rq_.offset >= 0 ? ::pwrite(s.fd_, rq_.buf, rq_.len, rq_.offset)
                            : ::write(s.fd_, rq_.buf, rq_.len);
        break;
      case Kind::fsync:
        r = ::fsync(s.fd_);
        break;
      case Kind::fdatasync:
        r = ::fdatasync(s.fd_);
        break;
    }
    apply(r, r < 0 ? errno : 0);
  }
  finish();
}

IoJob::Start IoJob::start(IoRing& ring) noexcept {
  ring_ = &ring;
  if (!begun_ && !begin()) {
    finish();
    return Start::finished;
  }
  if (!more()) {
    finish();
    return Start::finished;
  }
  try {
    next(kRingRequest);
    issue();
  } catch (...) {
    return Start::refused;
  }
  return Start::issued;
}

void IoJob::issue() {
  const int fd = state_->fd_;
  try {
    switch (kind_) {
      case Kind::cursor_read:
      case Kind::read_at:
        ring_->prep_read(*this, fd, rq_.buf, rq_.len, rq_.offset);
        break;
      case Kind::cursor_write:
      case Kind::write_at:
        ring_->prep_write(*this, fd, rq_.buf, rq_.len, rq_.offset);
        break;
      case Kind::fsync:
      case Kind::fdatasync:
        ring_->prep_fsync(*this, fd, kind_ == Kind::fdatasync);
        break;
    }
  } catch (...) {
    if (is_read()) data.resize(rq_.old);
    throw;
  }
}

void IoJob::complete(int res, std::uint32_t) noexcept {
  apply(res < 0 ? -1 : res, res < 0 ? -res : 0);
  if (more()) {
    try {
      next(kRingRequest);
      issue();
      return;
    } catch (...) {
      // The ring takes nothing now: the pool goes on from here.
      EventLoop* loop = current_loop();
      std::shared_ptr<FileJob> self(this);
      std::shared_ptr<FileState> state = state_;
      if (loop && state->to_pool(*loop, self, origin == loop)) return;
      self->run_blocking(*state);
      return state->run_queue(false);
    }
  }
  done();
}

void IoJob::abandon() noexcept {
  // The ring goes away with its loop: this request never completes, and the
  // ring must not be touched again. The call fails; what is queued behind it
  // runs here, with blocking calls (nothing else will run it).
  if (is_read()) data.resize(rq_.old);
  try {
    throw std::system_error(ECANCELED, std::generic_category(),
                            std::string(what()) + " " + quoted(state_->name_) +
                                ": the event loop running it was destroyed");
  } catch (...) {
    error_ = std::current_exception();
  }
  finish();
  std::shared_ptr<FileState> state = std::move(state_);
  delete this;
  state->run_queue(true);
}

void IoJob::done() noexcept {
  finish();
  std::shared_ptr<FileState> state = std::move(state_);
  delete this;
  state->run_queue(false);
}

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
  return pinned(state_, s.read(n, offset));
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
  return pinned(state_, s.write(std::move(data), offset));
}

Coro<std::int64_t> File::seek(std::int64_t offset, int whence) {
  return pinned(state_, state_or_closed(state_, "seek").seek(offset, whence));
}
Coro<std::int64_t> File::tell() { return pinned(state_, state_or_closed(state_, "tell").tell()); }

Coro<void> File::sync() { return pinned(state_, state_or_closed(state_, "sync").sync(false)); }

Coro<void> File::datasync() {
  return pinned(state_, state_or_closed(state_, "datasync").sync(true));
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

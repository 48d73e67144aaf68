// IoRing: a loop's io_uring instance, for completion-based socket I/O
// (issue 3) and file I/O (weft::File's reads, writes and fsyncs: prep_read,
// prep_write, prep_fsync; issue 19). The Selector owns it, creates it on first use, and waits in it
// instead of epoll_wait once it exists (selector.hpp says how the two
// combine). Stream transports over sockets use it for reading (one recv
// armed per connection, into the ring's provided buffers, so an idle
// connection holds no buffer) and for writing (one send in flight per
// connection), so a loop iteration that answers k connections makes one
// io_uring_enter instead of 2k + 1 system calls. Where the kernel can bound
// a multishot recv's total bytes (Linux 6.17; the ring probes for it when
// it is set up), the recv is multishot: it stays armed across
// completions, so a connection that keeps receiving costs one completion per
// chunk and no submission. The bound is what flow control needs: a cancel
// may not stop a multishot recv while its socket keeps receiving (over TCP
// loopback we saw 241 cancels answered 0 while the recv delivered 4 MiB
// more and ended only when the socket ran dry; a flooded AF_UNIX socket
// stopped at once), so a reader's pause cannot rely on it; a recv limited
// to the bytes the reader may still take ends by itself at the pause.
// Elsewhere (kernels before 6.17) the recv is single-shot, issued again
// after each completion while the reader reads.
//
// Invariants:
// - Owner-only: every member is called on the thread running the owning
//   loop (the destructor: on whichever thread destroys the loop, once no
//   thread runs it). The kernel is the only other party; liburing publishes
//   the SQ tail, the CQ head and the buffer ring's tail and reads the
//   kernel's SQ head and CQ tail with the orderings the io_uring ABI asks for.
// - An IoOp has at most one request outstanding. It is active from a prep_*
//   call until its final completion (one without more()) has been handed to complete(), or
//   until the ring goes away, which hands it to abandon() instead. A multishot request hands
//   complete() any number of completions flagged more() before its final one. Active ops sit
//   in an intrusive list for that purpose. Cancel
//   requests (prep_cancel) carry no op: their own CQEs are dropped, and the cancelled op still gets
//   its final completion (-ECANCELED, or its real result if it finished first).
// - Provided buffers (group 0): the kernel picks one per recv completion;
//   the completion handler reads it through buffer() and the ring takes it
//   back as soon as complete() returns, so no buffer outlives one reap, and
//   the tail is published before the next submission.
// - The ring's memory (SQ, CQ, SQEs, buffers) stays mapped until every
//   active op has reported back: ~IoRing cancels them all and waits for
//   their final CQEs before unmapping (a send the kernel still holds reads
//   the caller's bytes, a recv writes into a provided buffer). If the kernel
//   does not report them all, the memory and the ops' owners are leaked
//   rather than freed under it.
// - Requests belong to the thread that submitted them: if that thread exits
//   (a standalone loop later run by another thread), its outstanding
//   requests end with -ECANCELED, and their owners issue them again.
// - Nothing in here runs completion handlers while a prep_* call is on the
//   stack: a full SQ is submitted, never reaped, from prep.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

struct io_uring_sqe;  // <liburing.h>, included by io_ring.cpp only
struct io_uring_cqe;
struct msghdr;  // <sys/socket.h>

namespace weft::detail {

/// One outstanding io_uring request's owner. complete() and abandon() run on
/// the owning loop's thread; abandon() must not touch the ring.
class IoOp {
 public:
  /// `res` is the CQE's result (bytes, or -errno), `flags` its flags
  /// (IoRing::more(flags): the request goes on). Runs inside the loop's
  /// poll: it must not throw, and it must not block.
  virtual void complete(int res, std::uint32_t flags) noexcept = 0;
  /// The ring is going away; no completion will follow.
  virtual void abandon() noexcept = 0;
  bool active() const noexcept { return active_; }

 protected:
  IoOp() = default;
  ~IoOp() = default;
  IoOp(const IoOp&) = delete;
  IoOp& operator=(const IoOp&) = delete;

 private:
  friend class IoRing;
  IoOp* prev_ = nullptr;
  IoOp* next_ = nullptr;
  bool active_ = false;
};

/// Requests handed to a ring, by kind (WorkerMetrics): written by the ring's
/// owner with a relaxed load and store, read by anyone.
struct IoOpCounters {
  std::atomic<std::uint64_t> ring_recvs{0};
  std::atomic<std::uint64_t> ring_sends{0};     // send and sendmsg
  std::atomic<std::uint64_t> ring_file_ops{0};  // read, write and fsync on files
  static void count(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

class IoRing {
 public:
  /// A ring, or null where io_uring cannot be used: the kernel lacks it or
  /// the features we need (Linux 6.0: provided buffer rings with buffer
  /// select taking the buffer's length, multishot poll kept on overflow),
  /// or a seccomp filter or kernel.io_uring_disabled refuses it (the
  /// Selector does not ask when LoopOptions::io_uring is off). `epoll_fd` is
  /// the selector's epoll set, watched by a multishot poll so that one wait
  /// covers both. `multishot` false (LoopOptions::io_uring_multishot) keeps
  /// recvs single-shot where multishot would be used (to compare the two,
  /// and to test the single-shot path).
  static std::unique_ptr<IoRing> create(int epoll_fd, bool multishot);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  /// A recv on a socket into provided buffers that takes at most
  /// `max_bytes` (> 0) in all. Multishot where recv_is_multishot(): one
  /// completion per chunk, flagged more() while the request goes on; it ends
  /// with a completion without more(): the one that reaches max_bytes (the
  /// kernel checks the limit after each chunk, so that last chunk may take
  /// it past max_bytes, by less than buffer_size()), end of
  /// file (0), an error, the cancel (-ECANCELED), or -ENOBUFS when every
  /// provided buffer was in use (they are all back before the next
  /// submission, so issuing it again is enough). Single-shot otherwise (one
  /// completion of at most buffer_size() bytes); `poll_first` then waits for
  /// readiness before trying (the caller just drained the socket). Returns
  /// the most one completion can carry (single-shot: what was asked for), so
  /// that a completion with less is known to be a short read.
  std::size_t prep_recv(IoOp& op, int fd, std::size_t max_bytes, bool poll_first);
  /// True if prep_recv issues multishot recvs (see the top of this file).
  bool recv_is_multishot() const noexcept { return multishot_recv_; }
  /// One send of [data, data + size) with MSG_NOSIGNAL; the bytes must stay
  /// untouched until op's completion.
  void prep_send(IoOp& op, int fd, const char* data, std::size_t size);
  /// One sendmsg with MSG_NOSIGNAL (a vectored send); `msg`, its iovecs and
  /// their bytes must stay untouched until op's completion.
  void prep_sendmsg(IoOp& op, int fd, const ::msghdr* msg);
  /// Asks the kernel to cancel op's outstanding request (no-op if inactive).
  void prep_cancel(IoOp& op);

  /// True if the kernel takes the file requests below (IORING_OP_READ,
  /// IORING_OP_WRITE and IORING_OP_FSYNC, probed when the ring is set up).
  bool file_io() const noexcept { return file_io_; }
  /// One read(2)/pread(2) of up to `size` bytes into `data` at `offset`
  /// (-1: at the file's position, as read(2)); the bytes must stay in place
  /// until op's completion. Only where file_io().
  void prep_read(IoOp& op, int fd, char* data, std::size_t size, std::int64_t offset);
  /// One write(2)/pwrite(2) of [data, data + size) at `offset` (-1: at the
  /// file's position, as write(2)); the bytes must stay untouched until op's
  /// completion. Only where file_io().
  void prep_write(IoOp& op, int fd, const char* data, std::size_t size, std::int64_t offset);
  /// fsync(2), or fdatasync(2) where `datasync`. Only where file_io().
  void prep_fsync(IoOp& op, int fd, bool datasync);

  /// True if a completion's request goes on (multishot): more will follow.
  static bool more(std::uint32_t flags) noexcept;
  /// The bytes of a recv completion (res > 0, flags with IORING_CQE_F_BUFFER).
  std::string_view buffer(int res, std::uint32_t flags) const noexcept;
  /// The size of one provided buffer: a recv completion carries at most this much.
  static std::size_t buffer_size() noexcept;

  /// Ops issued and not yet finished (the epoll watch excluded).
  std::size_t active_ops() const noexcept { return active_count_; }
  /// True if completions wait in the CQ (no system call).
  bool completions_ready() const noexcept;
  /// True if requests are queued and not yet submitted.
  bool submissions_queued() const noexcept;
  /// Submits the queued requests without waiting or running completions
  /// (a busy loop between polls; a loop that stops running).
  /// @throws std::system_error as wait().
  void submit();

  /// Submits what is queued and waits up to timeout_ns for a completion
  /// (-1: forever; 0: does not wait and makes no system call when nothing is
  /// queued), then runs the completions. Returns true when the epoll set
  /// signalled readiness since the last call. EINTR ends the wait early.
  /// @throws std::system_error if io_uring_enter fails otherwise.
  bool wait(std::int64_t timeout_ns);

  /// Requests queued for the kernel (the epoll watch's included) and
  /// completions taken from the CQ (for tests and benchmarks).
  struct Stats {
    std::uint64_t submitted = 0;
    std::uint64_t completions = 0;
  };
  const Stats& stats() const noexcept { return stats_; }
  /// Where prep_* count their requests (set by the Selector; may stay null).
  IoOpCounters* counters = nullptr;

 private:
  struct Rings;
  IoRing() = default;
  bool setup(int epoll_fd, bool multishot);
  /// An SQE to fill (liburing's prep helpers set every field); a full SQ
  /// is submitted first (never reaped). Counted in stats().submitted.
  ::io_uring_sqe* next_sqe();
  void start(IoOp& op);
  void finish(IoOp& op) noexcept;
  void arm_epoll_watch();
  /// Whether the kernel ends a multishot recv at its byte limit; unusable:
  /// the kernel did not take the probe's request, so the ring is not used.
  enum class Probe { limited, unlimited, unusable };
  Probe probe_multishot_recv_limit();
  /// Publishes the buffers handed back, submits what is queued and, unless
  /// timeout_ns is 0, waits up to timeout_ns (-1: forever) for a completion.
  /// @throws std::system_error as wait().
  void enter(std::int64_t timeout_ns);
  /// The one loop over the CQ: hands each completion, copied and already
  /// given back to the kernel, to `on_completion(const io_uring_cqe&)` until
  /// the CQ (and the kernel's overflow list) is empty.
  template <class OnCompletion>
  void drain_completions(OnCompletion&& on_completion);
  /// Runs the completions in the CQ; returns true if the epoll watch fired.
  bool reap();
  void recycle(std::uint16_t bid) noexcept;
  void publish_buffers() noexcept;
  void drain_for_destruction() noexcept;

  std::unique_ptr<Rings> rings_;
  int epoll_fd_ = -1;
  bool epoll_watched_ = false;   // the multishot poll on epoll_fd_ is armed
  bool multishot_recv_ = false;  // recvs are multishot with a byte limit
  bool file_io_ = false;         // the kernel takes READ, WRITE and FSYNC
  std::size_t active_count_ = 0;
  IoOp* active_head_ = nullptr;
  Stats stats_;
};

/// Test-only seam (tests/fault_injection_test.cpp): null outside that test.
/// When set, reap() passes each final completion that carries no provided
/// buffer through it, and an op completes with what it returns (the test
/// turns some into -ENOBUFS or -ECANCELED). Set it only while no loop runs.
extern int (*io_ring_completion_fault)(int res) noexcept;
/// Test-only seam (tests/fault_injection_test.cpp): null outside that test.
/// liburing enters the kernel with its own system calls, which an
/// LD_PRELOAD shim cannot reach. When set, each submit or wait (IoRing::
/// enter) calls it first; a negative errno it returns (-EINTR, -EAGAIN,
/// -EBUSY) is taken as io_uring_enter's result, the call not made: nothing
/// submitted, nothing waited for. Set it only while no loop runs.
extern int (*io_ring_enter_fault)() noexcept;

}  // namespace weft::detail

// IoRing on liburing (Debian 12: liburing 2.3): liburing sets the ring up,
// maps it, hands out and prepares SQEs, publishes the SQ, maintains the
// buffer ring and waits. The invariants are listed in io_ring.hpp.
#include <weft/reactor/io_ring.hpp>

#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <system_error>

namespace weft::detail {
namespace {

constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;
// Provided buffers: 256 x 16 KiB per ring (4 MiB of address space, touched
// as the kernel hands buffers out). A recv completion carries at most one.
constexpr unsigned kBufferCount = 256;
constexpr std::size_t kBufferSize = 16 * 1024;
constexpr std::uint16_t kBufferGroup = 0;
// user_data of the multishot poll on the epoll set; ops are aligned pointers
// and cancel requests use 0, so 1 and 2 are free.
constexpr std::uint64_t kEpollWatch = 1;
// user_data of the setup's probe recv (probe_multishot_recv_limit).
constexpr std::uint64_t kProbe = 2;

/// A buffer-select recv of at most `limit` bytes in all, multishot.
void prep_multishot_recv(io_uring_sqe* sqe, int fd, std::uint32_t limit) {
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0,
                               0);  // each completion: up to its buffer's length
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  // The byte limit travels in the SQE field that Linux 6.17's header calls
  // optlen; liburing 2.3's header has it only as file_index (the same
  // union), and no helper sets it. Kernels without the limit reject a recv
  // that sets it with -EINVAL.
  sqe->file_index = limit;
}

/// Provided buffer rings arrived in 5.19, but a buffer-select recv with
/// len 0 taking the buffer's length, and a multishot poll surviving a CQ
/// overflow, only in 6.0.
bool kernel_is_recent_enough() {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major >= 6;
}

}  // namespace

int (*io_ring_completion_fault)(int res) noexcept = nullptr;
int (*io_ring_enter_fault)() noexcept = nullptr;

// The ring and the provided buffers. The destructor unmaps them and closes
// the ring; ~IoRing releases it instead where the kernel may still use them.
struct IoRing::Rings {
  io_uring ring{};
  bool ring_ready = false;
  io_uring_buf_ring* buf_ring = static_cast<io_uring_buf_ring*>(MAP_FAILED);
  std::size_t buf_ring_len = 0;
  char* buffers = static_cast<char*>(MAP_FAILED);
  std::size_t buffers_len = 0;
  int buffers_added = 0;  // handed back since the buffer ring's tail was last published

  ~Rings() {
    if (buffers != MAP_FAILED) ::munmap(buffers, buffers_len);
    if (buf_ring != MAP_FAILED) ::munmap(buf_ring, buf_ring_len);
    if (ring_ready) ::io_uring_queue_exit(&ring);
  }
};

std::unique_ptr<IoRing> IoRing::create(int epoll_fd, bool multishot) {
  if (!kernel_is_recent_enough()) return nullptr;
  std::unique_ptr<IoRing> ring(new IoRing());
  if (!ring->setup(epoll_fd, multishot)) return nullptr;
  return ring;
}

bool IoRing::setup(int epoll_fd, bool multishot) {
  auto fail = [this](int err) {
    rings_.reset();
    errno = err;  // for Selector::io_ring: out of descriptors or memory may pass
    return false;
  };
  rings_ = std::make_unique<Rings>();
  Rings& r = *rings_;
  io_uring_params p{};
  // COOP_TASKRUN: completions do not interrupt this thread while it runs
  // user code; they are run at its next system call (the loop makes one per
  // iteration with I/O outstanding), and TASKRUN_FLAG says when that is due.
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG;
  p.cq_entries = kCqEntries;
  if (int err = ::io_uring_queue_init_params(kSqEntries, &r.ring, &p); err < 0) return fail(-err);
  r.ring_ready = true;
  constexpr unsigned kNeeded = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
  if ((p.features & kNeeded) != kNeeded) return fail(EOPNOTSUPP);
  r.buf_ring_len = kBufferCount * sizeof(io_uring_buf);
  r.buf_ring = static_cast<io_uring_buf_ring*>(
      ::mmap(nullptr, r.buf_ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  r.buffers_len = kBufferCount * kBufferSize;
  r.buffers = static_cast<char*>(::mmap(nullptr, r.buffers_len, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (r.buf_ring == MAP_FAILED || r.buffers == MAP_FAILED) return fail(ENOMEM);
  ::io_uring_buf_ring_init(r.buf_ring);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(r.buf_ring);
  reg.ring_entries = kBufferCount;
  reg.bgid = kBufferGroup;
  if (int err = ::io_uring_register_buf_ring(&r.ring, &reg, 0); err < 0) return fail(-err);
  for (unsigned i = 0; i < kBufferCount; ++i) recycle(static_cast<std::uint16_t>(i));
  publish_buffers();
  const Probe probe = probe_multishot_recv_limit();
  // Unusable: the kernel never took the probe, so nothing of it is outstanding.
  if (probe == Probe::unusable) return fail(EOPNOTSUPP);
  multishot_recv_ = probe == Probe::limited && multishot;
  if (io_uring_probe* ops = ::io_uring_get_probe_ring(&r.ring)) {
    file_io_ = ::io_uring_opcode_supported(ops, IORING_OP_READ) &&
               ::io_uring_opcode_supported(ops, IORING_OP_WRITE) &&
               ::io_uring_opcode_supported(ops, IORING_OP_FSYNC);
    ::io_uring_free_probe(ops);
  }
  epoll_fd_ = epoll_fd;
  arm_epoll_watch();
  return true;
}

IoRing::Probe IoRing::probe_multishot_recv_limit() {
  // Two bytes wait on a socket; a multishot recv limited to one byte must
  // end with its first completion. A kernel without the limit rejects the
  // request (-EINVAL; the limit arrived in 6.17) or would deliver both and go
  // on: the write side's shutdown then ends it with end of file. Runs before
  // any op exists, so every CQE here is ours.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
    return Probe::unlimited;
  Probe result = Probe::unlimited;
  if (::send(sv[0], "ab", 2, MSG_NOSIGNAL) == 2) {
    try {
      io_uring_sqe* sqe = next_sqe();
      prep_multishot_recv(sqe, sv[1], 1);
      ::io_uring_sqe_set_data64(sqe, kProbe);
      bool ended = false, first = true;
      for (int round = 0; round < 100 && !ended; ++round) {
        enter(10'000'000);
        drain_completions([&](const io_uring_cqe& cqe) {
          if (cqe.flags & IORING_CQE_F_BUFFER)
            recycle(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
          // The limit is checked after each chunk: this one may hold both bytes.
          if (first && cqe.res > 0 && !(cqe.flags & IORING_CQE_F_MORE)) result = Probe::limited;
          first = false;
          if (!(cqe.flags & IORING_CQE_F_MORE)) ended = true;
        });
        publish_buffers();
        if (!ended) ::shutdown(sv[0], SHUT_WR);
      }
      // Not answered: a submitted probe's late CQE is skipped by reap(); one
      // the kernel never took would go out with the next submission, on an
      // fd number that may belong to a connection by then.
      if (!ended) result = Probe::unlimited;
    } catch (const std::system_error&) {
      result = Probe::unlimited;
    }
    if (submissions_queued()) result = Probe::unusable;
  }
  ::close(sv[0]);
  ::close(sv[1]);
  return result;
}

IoRing::~IoRing() {
  if (rings_) drain_for_destruction();
}

io_uring_sqe* IoRing::next_sqe() {
  io_uring& ring = rings_->ring;
  io_uring_sqe* sqe = ::io_uring_get_sqe(&ring);
  if (!sqe) {
    // Full: submit what is queued (no completions run here; see the header).
    submit();
    sqe = ::io_uring_get_sqe(&ring);
    if (!sqe)
      throw std::system_error(EBUSY, std::generic_category(),
                              "io_uring: submission queue full and not accepted by the kernel");
  }
  ++stats_.submitted;
  return sqe;
}

void IoRing::start(IoOp& op) {
  op.active_ = true;
  op.prev_ = nullptr;
  op.next_ = active_head_;
  if (active_head_) active_head_->prev_ = &op;
  active_head_ = &op;
  ++active_count_;
}

void IoRing::finish(IoOp& op) noexcept {
  if (!op.active_) return;
  op.active_ = false;
  if (op.prev_)
    op.prev_->next_ = op.next_;
  else
    active_head_ = op.next_;
  if (op.next_) op.next_->prev_ = op.prev_;
  op.prev_ = op.next_ = nullptr;
  --active_count_;
}

std::size_t IoRing::prep_recv(IoOp& op, int fd, std::size_t max_bytes, bool poll_first) {
  max_bytes = std::clamp<std::size_t>(max_bytes, 1, 1u << 30);
  io_uring_sqe* sqe = next_sqe();
  std::size_t per_completion = kBufferSize;
  if (multishot_recv_) {
    prep_multishot_recv(sqe, fd, static_cast<std::uint32_t>(max_bytes));
  } else {
    per_completion = std::min(max_bytes, kBufferSize);
    ::io_uring_prep_recv(sqe, fd, nullptr, per_completion, 0);
    if (poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
  }
  ::io_uring_sqe_set_data(sqe, &op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_recvs);
  return per_completion;
}

void IoRing::prep_send(IoOp& op, int fd, const char* data, std::size_t size) {
  io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_send(sqe, fd, data, std::min<std::size_t>(size, 1u << 30), MSG_NOSIGNAL);
  ::io_uring_sqe_set_data(sqe, &op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_sends);
}

void IoRing::prep_sendmsg(IoOp& op, int fd, const ::msghdr* msg) {
  io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
  ::io_uring_sqe_set_data(sqe, &op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_sends);
}

void IoRing::prep_cancel(IoOp& op) {
  if (!op.active_) return;
  io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_cancel(sqe, &op, 0);
  ::io_uring_sqe_set_data64(sqe, 0);
}

void IoRing::prep_read(IoOp& op, int fd, char* data, std::size_t size, std::int64_t offset) {
  io_uring_sqe* sqe = next_sqe();
  // offset -1 is the kernel's "at the file position" (read(2)); len is 32 bits.
  ::io_uring_prep_read(sqe, fd, data, static_cast<unsigned>(std::min<std::size_t>(size, 1u << 30)),
                       static_cast<std::uint64_t>(offset));
  ::io_uring_sqe_set_data(sqe, &op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_file_ops);
}

void IoRing::prep_write(IoOp& op, int fd, const char* data, std::size_t size, std::int64_t offset) {
  io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_write(sqe, fd, data, static_cast<unsigned>(std::min<std::size_t>(size, 1u << 30)),
                        static_cast<std::uint64_t>(offset));
  ::io_uring_sqe_set_data(sqe, &op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_file_ops);
}

void IoRing::prep_fsync(IoOp& op, int fd, bool datasync) {
  io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
  ::io_uring_sqe_set_data(sqe, &op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_file_ops);
}

void IoRing::arm_epoll_watch() {
  io_uring_sqe* sqe = next_sqe();
  ::io_uring_prep_poll_multishot(sqe, epoll_fd_, POLLIN);
  ::io_uring_sqe_set_data64(sqe, kEpollWatch);
  epoll_watched_ = true;
}

std::size_t IoRing::buffer_size() noexcept { return kBufferSize; }

bool IoRing::more(std::uint32_t flags) noexcept { return flags & IORING_CQE_F_MORE; }

std::string_view IoRing::buffer(int res, std::uint32_t flags) const noexcept {
  auto bid = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  return {rings_->buffers + static_cast<std::size_t>(bid) * kBufferSize,
          static_cast<std::size_t>(res)};
}

void IoRing::recycle(std::uint16_t bid) noexcept {
  Rings& r = *rings_;
  ::io_uring_buf_ring_add(r.buf_ring, r.buffers + static_cast<std::size_t>(bid) * kBufferSize,
                          static_cast<unsigned>(kBufferSize), bid,
                          ::io_uring_buf_ring_mask(kBufferCount), r.buffers_added++);
}

void IoRing::publish_buffers() noexcept {
  Rings& r = *rings_;
  if (r.buffers_added == 0) return;
  // ordering: a release store of the tail, so the kernel sees the entries first.
  ::io_uring_buf_ring_advance(r.buf_ring, r.buffers_added);
  r.buffers_added = 0;
}

bool IoRing::completions_ready() const noexcept { return ::io_uring_cq_ready(&rings_->ring) != 0; }

bool IoRing::submissions_queued() const noexcept { return ::io_uring_sq_ready(&rings_->ring) != 0; }

namespace {
/// The result of a liburing call that submits or waits: the count, or 0
/// where nothing is wrong with the ring. EINTR: a signal; ETIME: the
/// timeout passed; EAGAIN/EBUSY: the kernel is short of memory or has
/// completions to flush first: the queued requests stay in the SQ and go
/// with the next call. EBADR: the kernel had to drop a completion under
/// memory pressure (it says so once); what it belonged to ends with its
/// connection.
int checked(int r) {
  if (r >= 0) return r;
  if (r == -EINTR || r == -ETIME || r == -EAGAIN || r == -EBUSY || r == -EBADR) return 0;
  throw std::system_error(-r, std::generic_category(), "io_uring_enter");
}
}  // namespace

void IoRing::enter(std::int64_t timeout_ns) {
  io_uring& ring = rings_->ring;
  publish_buffers();
  // The test seam: io_uring_enter failing before it submitted or waited
  // (what EINTR, EAGAIN and EBUSY mean), the requests left in the SQ.
  if (io_ring_enter_fault) {
    if (int r = io_ring_enter_fault(); r < 0) {
      checked(r);
      return;
    }
  }
  if (timeout_ns < 0) {
    checked(::io_uring_submit_and_wait(&ring, 1));
  } else if (timeout_ns > 0) {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    checked(::io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr));
  } else {
    // Submits what is queued; enters the kernel only for that, or when
    // completions wait there (task work to run, an overflowed CQ).
    checked(::io_uring_submit(&ring));
  }
}

void IoRing::submit() { enter(0); }

bool IoRing::wait(std::int64_t timeout_ns) {
  if (completions_ready()) timeout_ns = 0;
  enter(timeout_ns);
  return reap();
}

template <class OnCompletion>
void IoRing::drain_completions(OnCompletion&& on_completion) {
  io_uring& ring = rings_->ring;
  for (;;) {
    unsigned ready = ::io_uring_cq_ready(&ring);  // one acquire load of the tail per batch
    if (ready == 0) {
      // Completions the CQ had no room for wait in the kernel until asked for.
      if (!::io_uring_cq_has_overflow(&ring)) return;
      checked(::io_uring_get_events(&ring));
      ready = ::io_uring_cq_ready(&ring);
      if (ready == 0) return;
    }
    for (; ready > 0; --ready) {
      // Copied and handed back to the kernel before it is handled: a handler
      // may issue requests (and the kernel fill the CQ meanwhile).
      const io_uring_cqe cqe = ring.cq.cqes[*ring.cq.khead & ring.cq.ring_mask];
      ::io_uring_cq_advance(&ring, 1);
      ++stats_.completions;
      on_completion(cqe);
    }
  }
}

bool IoRing::reap() {
  bool epoll_fired = false;
  drain_completions([&](const io_uring_cqe& cqe) {
    if (cqe.user_data == 0) return;  // a cancel request's own result
    if (cqe.user_data == kProbe) {   // the setup's probe, answered late
      if (cqe.flags & IORING_CQE_F_BUFFER)
        recycle(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
      return;
    }
    if (cqe.user_data == kEpollWatch) {
      epoll_fired = true;
      if (!(cqe.flags & IORING_CQE_F_MORE)) epoll_watched_ = false;
      return;
    }
    auto* op = reinterpret_cast<IoOp*>(cqe.user_data);
    // Unlinked first, so that complete() may issue the op's next request
    // (and may drop the last reference to its owner).
    if (!(cqe.flags & IORING_CQE_F_MORE)) finish(*op);
    int res = cqe.res;
    if (io_ring_completion_fault && !(cqe.flags & (IORING_CQE_F_MORE | IORING_CQE_F_BUFFER)))
      res = io_ring_completion_fault(res);
    op->complete(res, cqe.flags);
    if (cqe.flags & IORING_CQE_F_BUFFER)
      recycle(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
  });
  publish_buffers();
  if (!epoll_watched_) arm_epoll_watch();
  return epoll_fired;
}

void IoRing::drain_for_destruction() noexcept {
  if (active_count_ > 0) {
    try {
      io_uring_sqe* sqe = next_sqe();
      ::io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
      ::io_uring_sqe_set_data64(sqe, 0);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (active_count_ > 0 && std::chrono::steady_clock::now() < deadline) {
        enter(10'000'000);
        drain_completions([&](const io_uring_cqe& cqe) {
          if (cqe.user_data <= kProbe || (cqe.flags & IORING_CQE_F_MORE)) return;
          auto* op = reinterpret_cast<IoOp*>(cqe.user_data);
          finish(*op);
          op->abandon();
        });
      }
    } catch (const std::system_error&) {
      // The kernel refused the cancel or the wait: see below.
    }
  }
  if (active_count_ > 0) {
    // The kernel may still read or write these requests' memory after the
    // ring is closed (its teardown is asynchronous): close the ring but leak
    // the mappings and the ops' owners (they hold themselves) rather than
    // free memory under it.
    ::close(rings_->ring.ring_fd);
    static_cast<void>(rings_.release());
    active_head_ = nullptr;
    active_count_ = 0;
  }
}

}  // namespace weft::detail

// IoRing: raw io_uring (no liburing: it is not among our Debian packages).
// The invariants are listed in io_ring.hpp.
#include <weft/reactor/io_ring.hpp>

#include <linux/io_uring.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
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
// A multishot recv's byte limit travels in the SQE field that newer
// headers call optlen (a union with file_index in ours). Kernels without
// the limit reject a recv that sets it with -EINVAL.
void set_recv_limit(io_uring_sqe* sqe, std::uint32_t max_bytes) { sqe->file_index = max_bytes; }

/// A buffer-select recv of at most `limit` bytes in all, multishot.
void fill_multishot_recv(io_uring_sqe* sqe, int fd, std::uint32_t limit) {
  sqe->opcode = IORING_OP_RECV;
  sqe->fd = fd;
  sqe->len = 0;  // each completion takes up to its buffer's length
  sqe->ioprio = IORING_RECV_MULTISHOT;
  sqe->flags = IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  set_recv_limit(sqe, limit);
}

int sys_setup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(::syscall(__NR_io_uring_setup, entries, p));
}
int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void* arg,
              std::size_t argsz) {
  return static_cast<int>(
      ::syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz));
}
int sys_register(int fd, unsigned opcode, const void* arg, unsigned nr) {
  return static_cast<int>(::syscall(__NR_io_uring_register, fd, opcode, arg, nr));
}

// ordering: the ring indices are shared with the kernel; these are the
// acquire/release accesses the io_uring ABI asks for.
unsigned load_acquire(const unsigned* p) noexcept {
  return std::atomic_ref<unsigned>(*const_cast<unsigned*>(p)).load(std::memory_order_acquire);
}
void store_release(unsigned* p, unsigned v) noexcept {
  std::atomic_ref<unsigned>(*p).store(v, std::memory_order_release);
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

struct IoRing::Mapping {
  void* rings = MAP_FAILED;
  std::size_t rings_len = 0;
  io_uring_sqe* sqes = static_cast<io_uring_sqe*>(MAP_FAILED);
  std::size_t sqes_len = 0;
  unsigned* sq_head = nullptr;
  unsigned* sq_tail = nullptr;
  unsigned* sq_flags = nullptr;
  unsigned* sq_array = nullptr;
  unsigned sq_mask = 0;
  unsigned sq_entries = 0;
  unsigned sq_tail_local = 0;  // SQEs written; published to *sq_tail before each enter
  unsigned* cq_head = nullptr;
  unsigned* cq_tail = nullptr;
  unsigned cq_mask = 0;
  io_uring_cqe* cqes = nullptr;

  io_uring_buf* buf_ring = static_cast<io_uring_buf*>(MAP_FAILED);
  std::size_t buf_ring_len = 0;
  char* buffers = static_cast<char*>(MAP_FAILED);
  std::size_t buffers_len = 0;
  std::uint16_t buf_tail_local = 0;      // buffers handed back
  std::uint16_t buf_tail_published = 0;  // what the kernel has been told

  ~Mapping() {
    if (buffers != MAP_FAILED) ::munmap(buffers, buffers_len);
    if (buf_ring != MAP_FAILED) ::munmap(buf_ring, buf_ring_len);
    if (sqes != MAP_FAILED) ::munmap(sqes, sqes_len);
    if (rings != MAP_FAILED) ::munmap(rings, rings_len);
  }

  std::uint16_t* buf_tail() noexcept {
    // The buffer ring's tail overlays the reserved field of entry 0.
    return &reinterpret_cast<io_uring_buf_ring*>(buf_ring)->tail;
  }
};

std::unique_ptr<IoRing> IoRing::create(int epoll_fd, bool multishot) {
  if (!kernel_is_recent_enough()) return nullptr;
  std::unique_ptr<IoRing> ring(new IoRing());
  if (!ring->setup(epoll_fd, multishot)) return nullptr;
  return ring;
}

bool IoRing::setup(int epoll_fd, bool multishot) {
  io_uring_params p{};
  // COOP_TASKRUN: completions do not interrupt this thread while it runs
  // user code; they are run at its next system call (the loop makes one per
  // iteration with I/O outstanding), and TASKRUN_FLAG says when that is due.
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG;
  p.cq_entries = kCqEntries;
  ring_fd_ = sys_setup(kSqEntries, &p);
  if (ring_fd_ < 0) return false;
  constexpr unsigned kNeeded = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
  if ((p.features & kNeeded) != kNeeded) {
    ::close(ring_fd_);
    ring_fd_ = -1;
    return false;
  }
  map_ = std::make_unique<Mapping>();
  Mapping& m = *map_;
  m.rings_len = std::max<std::size_t>(p.sq_off.array + p.sq_entries * sizeof(unsigned),
                                      p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe));
  m.rings = ::mmap(nullptr, m.rings_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   ring_fd_, IORING_OFF_SQ_RING);
  m.sqes_len = p.sq_entries * sizeof(io_uring_sqe);
  m.sqes = static_cast<io_uring_sqe*>(::mmap(nullptr, m.sqes_len, PROT_READ | PROT_WRITE,
                                             MAP_SHARED | MAP_POPULATE, ring_fd_, IORING_OFF_SQES));
  m.buf_ring_len = kBufferCount * sizeof(io_uring_buf);
  m.buf_ring = static_cast<io_uring_buf*>(
      ::mmap(nullptr, m.buf_ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  m.buffers_len = kBufferCount * kBufferSize;
  m.buffers = static_cast<char*>(::mmap(nullptr, m.buffers_len, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (m.rings == MAP_FAILED || m.sqes == MAP_FAILED || m.buf_ring == MAP_FAILED ||
      m.buffers == MAP_FAILED) {
    map_.reset();
    ::close(ring_fd_);
    ring_fd_ = -1;
    return false;
  }
  char* base = static_cast<char*>(m.rings);
  m.sq_head = reinterpret_cast<unsigned*>(base + p.sq_off.head);
  m.sq_tail = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
  m.sq_flags = reinterpret_cast<unsigned*>(base + p.sq_off.flags);
  m.sq_array = reinterpret_cast<unsigned*>(base + p.sq_off.array);
  m.sq_mask = *reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
  m.sq_entries = p.sq_entries;
  m.sq_tail_local = *m.sq_tail;
  m.cq_head = reinterpret_cast<unsigned*>(base + p.cq_off.head);
  m.cq_tail = reinterpret_cast<unsigned*>(base + p.cq_off.tail);
  m.cq_mask = *reinterpret_cast<unsigned*>(base + p.cq_off.ring_mask);
  m.cqes = reinterpret_cast<io_uring_cqe*>(base + p.cq_off.cqes);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(m.buf_ring);
  reg.ring_entries = kBufferCount;
  reg.bgid = kBufferGroup;
  if (sys_register(ring_fd_, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) {
    map_.reset();
    ::close(ring_fd_);
    ring_fd_ = -1;
    return false;
  }
  for (unsigned i = 0; i < kBufferCount; ++i) recycle(static_cast<std::uint16_t>(i));
  publish_buffers();
  const Probe probe = probe_multishot_recv_limit();
  if (probe == Probe::unusable) {
    map_.reset();  // the kernel never took the probe: nothing of it is outstanding
    ::close(ring_fd_);
    ring_fd_ = -1;
    return false;
  }
  multishot_recv_ = probe == Probe::limited && multishot;
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
    Mapping& m = *map_;
    try {
      io_uring_sqe* sqe = next_sqe();
      fill_multishot_recv(sqe, sv[1], 1);
      sqe->user_data = kProbe;
      bool ended = false, first = true;
      for (int round = 0; round < 100 && !ended; ++round) {
        enter(m.sq_tail_local - load_acquire(m.sq_head), 1, 10'000'000);
        unsigned head = *m.cq_head;
        const unsigned tail = load_acquire(m.cq_tail);
        for (; head != tail; ++head) {
          const io_uring_cqe cqe = m.cqes[head & m.cq_mask];
          if (cqe.flags & IORING_CQE_F_BUFFER)
            recycle(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
          // The limit is checked after each chunk: this one may hold both bytes.
          if (first && cqe.res > 0 && !(cqe.flags & IORING_CQE_F_MORE)) result = Probe::limited;
          first = false;
          if (!(cqe.flags & IORING_CQE_F_MORE)) ended = true;
        }
        store_release(m.cq_head, head);
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
    if (m.sq_tail_local != load_acquire(m.sq_head)) result = Probe::unusable;
  }
  ::close(sv[0]);
  ::close(sv[1]);
  return result;
}

IoRing::~IoRing() {
  if (ring_fd_ < 0) return;
  drain_for_destruction();
  ::close(ring_fd_);
}

io_uring_sqe* IoRing::next_sqe() {
  Mapping& m = *map_;
  if (m.sq_tail_local - load_acquire(m.sq_head) >= m.sq_entries) {
    // Full: submit what is queued (no completions run here; see the header).
    enter(m.sq_tail_local - load_acquire(m.sq_head), 0, 0);
    if (m.sq_tail_local - load_acquire(m.sq_head) >= m.sq_entries)
      throw std::system_error(EBUSY, std::generic_category(),
                              "io_uring: submission queue full and not accepted by the kernel");
  }
  unsigned idx = m.sq_tail_local & m.sq_mask;
  io_uring_sqe* sqe = &m.sqes[idx];
  std::memset(sqe, 0, sizeof *sqe);
  m.sq_array[idx] = idx;
  ++m.sq_tail_local;
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
    fill_multishot_recv(sqe, fd, static_cast<std::uint32_t>(max_bytes));
  } else {
    per_completion = std::min(max_bytes, kBufferSize);
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = fd;
    sqe->len = static_cast<unsigned>(per_completion);
    if (poll_first) sqe->ioprio = IORING_RECVSEND_POLL_FIRST;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
  }
  sqe->user_data = reinterpret_cast<std::uint64_t>(&op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_recvs);
  return per_completion;
}

void IoRing::prep_send(IoOp& op, int fd, const char* data, std::size_t size) {
  io_uring_sqe* sqe = next_sqe();
  sqe->opcode = IORING_OP_SEND;
  sqe->fd = fd;
  sqe->addr = reinterpret_cast<std::uint64_t>(data);
  sqe->len = static_cast<unsigned>(std::min<std::size_t>(size, 1u << 30));
  sqe->msg_flags = MSG_NOSIGNAL;
  sqe->user_data = reinterpret_cast<std::uint64_t>(&op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_sends);
}

void IoRing::prep_sendmsg(IoOp& op, int fd, const ::msghdr* msg) {
  io_uring_sqe* sqe = next_sqe();
  sqe->opcode = IORING_OP_SENDMSG;
  sqe->fd = fd;
  sqe->addr = reinterpret_cast<std::uint64_t>(msg);
  sqe->len = 1;
  sqe->msg_flags = MSG_NOSIGNAL;
  sqe->user_data = reinterpret_cast<std::uint64_t>(&op);
  start(op);
  if (counters) IoOpCounters::count(counters->ring_sends);
}

void IoRing::prep_cancel(IoOp& op) {
  if (!op.active_) return;
  io_uring_sqe* sqe = next_sqe();
  sqe->opcode = IORING_OP_ASYNC_CANCEL;
  sqe->fd = -1;
  sqe->addr = reinterpret_cast<std::uint64_t>(&op);
  sqe->user_data = 0;
}

void IoRing::arm_epoll_watch() {
  io_uring_sqe* sqe = next_sqe();
  sqe->opcode = IORING_OP_POLL_ADD;
  sqe->fd = epoll_fd_;
  sqe->poll32_events = POLLIN;
  sqe->len = IORING_POLL_ADD_MULTI;
  sqe->user_data = kEpollWatch;
  epoll_watched_ = true;
}

std::size_t IoRing::buffer_size() noexcept { return kBufferSize; }

bool IoRing::more(std::uint32_t flags) noexcept { return flags & IORING_CQE_F_MORE; }

std::string_view IoRing::buffer(int res, std::uint32_t flags) const noexcept {
  auto bid = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  return {map_->buffers + static_cast<std::size_t>(bid) * kBufferSize,
          static_cast<std::size_t>(res)};
}

void IoRing::recycle(std::uint16_t bid) noexcept {
  Mapping& m = *map_;
  // Field by field: entry 0's reserved field is the ring's tail.
  io_uring_buf& b = m.buf_ring[m.buf_tail_local & (kBufferCount - 1)];
  b.addr = reinterpret_cast<std::uint64_t>(m.buffers + static_cast<std::size_t>(bid) * kBufferSize);
  b.len = static_cast<std::uint32_t>(kBufferSize);
  b.bid = bid;
  ++m.buf_tail_local;
}

void IoRing::publish_buffers() noexcept {
  Mapping& m = *map_;
  if (m.buf_tail_published == m.buf_tail_local) return;
  // ordering: release, so the kernel sees the entries before the new tail.
  std::atomic_ref<std::uint16_t>(*m.buf_tail()).store(m.buf_tail_local, std::memory_order_release);
  m.buf_tail_published = m.buf_tail_local;
}

bool IoRing::completions_ready() const noexcept {
  return load_acquire(map_->cq_tail) != *map_->cq_head;
}

int IoRing::enter(unsigned to_submit, unsigned min_complete, std::int64_t timeout_ns) {
  Mapping& m = *map_;
  publish_buffers();
  store_release(m.sq_tail, m.sq_tail_local);
  unsigned flags = IORING_ENTER_GETEVENTS;  // also runs pending task work
  io_uring_getevents_arg arg{};
  __kernel_timespec ts{};
  const void* argp = nullptr;
  std::size_t argsz = 0;
  if (min_complete > 0 && timeout_ns > 0) {
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    arg.ts = reinterpret_cast<std::uint64_t>(&ts);
    flags |= IORING_ENTER_EXT_ARG;
    argp = &arg;
    argsz = sizeof arg;
  }
  ++stats_.enters;
  int r = sys_enter(ring_fd_, to_submit, min_complete, flags, argp, argsz);
  if (r >= 0) {
    stats_.submitted += static_cast<unsigned>(r);
    return r;
  }
  // EINTR: a signal; ETIME: the timeout passed; EAGAIN/EBUSY: the kernel is
  // short of memory or has completions to flush first: the queued requests
  // stay in the SQ and go with the next call. EBADR: the kernel had to drop
  // a completion under memory pressure (it says so once); what it belonged
  // to ends with its connection.
  if (errno == EINTR || errno == ETIME || errno == EAGAIN || errno == EBUSY || errno == EBADR)
    return 0;
  throw std::system_error(errno, std::generic_category(), "io_uring_enter");
}

bool IoRing::submissions_queued() const noexcept {
  return map_->sq_tail_local != load_acquire(map_->sq_head);
}

void IoRing::submit() {
  publish_buffers();
  if (submissions_queued()) enter(map_->sq_tail_local - load_acquire(map_->sq_head), 0, 0);
}

bool IoRing::wait(std::int64_t timeout_ns) {
  Mapping& m = *map_;
  if (completions_ready()) timeout_ns = 0;
  unsigned to_submit = m.sq_tail_local - load_acquire(m.sq_head);
  if (timeout_ns != 0) {
    enter(to_submit, 1, timeout_ns);
  } else if (to_submit > 0 ||
             (load_acquire(m.sq_flags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))) {
    enter(to_submit, 0, 0);
  } else {
    publish_buffers();
  }
  return reap();
}

bool IoRing::reap() {
  Mapping& m = *map_;
  bool epoll_fired = false;
  for (;;) {
    unsigned head = *m.cq_head;
    unsigned tail = load_acquire(m.cq_tail);
    if (head == tail) {
      // Completions the CQ had no room for wait in the kernel until asked for.
      if (!(load_acquire(m.sq_flags) & IORING_SQ_CQ_OVERFLOW)) break;
      enter(0, 0, 0);
      if (load_acquire(m.cq_tail) == head) break;
      continue;
    }
    while (head != tail) {
      const io_uring_cqe cqe = m.cqes[head & m.cq_mask];
      ++head;
      store_release(m.cq_head, head);
      ++stats_.completions;
      if (cqe.user_data == 0) continue;  // a cancel request's own result
      if (cqe.user_data == kProbe) {     // the setup's probe, answered late
        if (cqe.flags & IORING_CQE_F_BUFFER)
          recycle(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
        continue;
      }
      if (cqe.user_data == kEpollWatch) {
        epoll_fired = true;
        if (!(cqe.flags & IORING_CQE_F_MORE)) epoll_watched_ = false;
        continue;
      }
      auto* op = reinterpret_cast<IoOp*>(cqe.user_data);
      // Unlinked first, so that complete() may issue the op's next request
      // (and may drop the last reference to its owner).
      if (!(cqe.flags & IORING_CQE_F_MORE)) finish(*op);
      op->complete(cqe.res, cqe.flags);
      if (cqe.flags & IORING_CQE_F_BUFFER)
        recycle(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
    }
  }
  publish_buffers();
  if (!epoll_watched_) arm_epoll_watch();
  return epoll_fired;
}

void IoRing::drain_for_destruction() noexcept {
  if (active_count_ == 0) return;
  try {
    io_uring_sqe* sqe = next_sqe();
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_ANY;
    sqe->user_data = 0;
    Mapping& m = *map_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (active_count_ > 0 && std::chrono::steady_clock::now() < deadline) {
      enter(m.sq_tail_local - load_acquire(m.sq_head), 1, 10'000'000);
      unsigned head = *m.cq_head;
      unsigned tail = load_acquire(m.cq_tail);
      for (; head != tail; ++head) {
        const io_uring_cqe& cqe = m.cqes[head & m.cq_mask];
        if (cqe.user_data <= kProbe || (cqe.flags & IORING_CQE_F_MORE)) continue;
        auto* op = reinterpret_cast<IoOp*>(cqe.user_data);
        finish(*op);
        op->abandon();
      }
      store_release(m.cq_head, head);
    }
  } catch (const std::system_error&) {
    // The kernel refused the cancel or the wait: see below.
  }
  if (active_count_ > 0) {
    // The kernel may still read or write these requests' memory after the
    // ring is closed (its teardown is asynchronous): leak the mapping and the
    // ops' owners (they hold themselves) rather than free memory under it.
    static_cast<void>(map_.release());
    active_head_ = nullptr;
    active_count_ = 0;
  }
}

}  // namespace weft::detail

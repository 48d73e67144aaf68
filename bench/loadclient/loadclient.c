/* Echo load client for weft's side-by-side benchmarks (issues 3 and 6).
 *
 *   loadclient HOST PORT CONNS SIZE SECONDS [MODE]
 *
 * Opens CONNS TCP connections (TCP_NODELAY, one thread). Each connection
 * repeats: send SIZE bytes, wait until SIZE bytes have come back, record the
 * round-trip time (strict request/response: at most one request in flight per
 * connection). Runs for SECONDS after all connections are up and prints one
 * line:
 *   req_per_sec=<x> p50_us=<..> p99_us=<..> requests=<n> conns=<c> size=<s> mode=<m>
 *
 * The client shares the machine with the server it measures, so it is built to
 * spend as little CPU per request as it can. MODE picks the I/O mechanism:
 *   epoll  non-blocking sockets in one edge-triggered epoll. Per request one
 *          send() and one recv(), plus epoll_wait() amortised over the ready
 *          connections. No call is made to find a socket empty: epoll's event
 *          mask says whether there is anything to read, and a short read or
 *          write means the socket was drained or filled (epoll(7)), so the next
 *          data or space makes a new edge.
 *   uring  io_uring through the raw system calls (no liburing). Per request one
 *          SEND and one RECV submission entry; every round submits all queued
 *          entries and waits for at least one completion in a single
 *          io_uring_enter() with a timeout, so per request the client makes a
 *          fraction of a system call. Uses only features of Linux 6.1.
 *   auto   (default) uring if io_uring_setup works here, else epoll with a
 *          note on stderr (io_uring may be off: seccomp, kernel.io_uring_disabled).
 * Received bytes are not checked (every connection reads into one scratch
 * buffer); errors and a server closing a connection print a message and exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct conn {
  int fd;
  size_t sent;     /* bytes of the current request written */
  size_t received; /* bytes of the current response read */
  uint64_t start_ns;
};

/* What both modes share; written and read by the one thread only. */
static size_t size;         /* request and response size */
static const char* sendbuf; /* the request, SIZE bytes */
static char* recvbuf;       /* scratch for responses, SIZE bytes */
static uint64_t end_ns;     /* CLOCK_MONOTONIC time the run stops */
static uint64_t requests;   /* completed round trips */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Latency histogram: 1 us buckets up to 100 ms, then one overflow bucket. */
#define HIST_BUCKETS 100001
static uint64_t hist[HIST_BUCKETS + 1];

static void record(uint64_t ns) {
  uint64_t us = ns / 1000;
  hist[us < HIST_BUCKETS ? us : HIST_BUCKETS]++;
}

static uint64_t percentile(uint64_t total, double p) {
  uint64_t want = (uint64_t)(p * (double)total), seen = 0;
  if (want == 0) want = 1;
  for (uint64_t i = 0; i <= HIST_BUCKETS; i++) {
    seen += hist[i];
    if (seen >= want) return i;
  }
  return HIST_BUCKETS;
}

static void die(const char* what) {
  perror(what);
  exit(1);
}

/* A response is complete: record it and start the next request's clock.
 * Returns 0 when the run's time is up (the request is then not sent). */
static int complete(struct conn* c) {
  uint64_t t = now_ns();
  record(t - c->start_ns);
  requests++;
  if (t >= end_ns) return 0;
  c->sent = c->received = 0;
  c->start_ns = t;
  return 1;
}

/* ------------------------------------------------------------------ epoll */

/* Write as much of the request as the socket takes; returns -1 on error. A
 * short write means the send buffer is full: EPOLLOUT's next edge resumes. */
static int pump_send(struct conn* c) {
  while (c->sent < size) {
    ssize_t n = send(c->fd, sendbuf + c->sent, size - c->sent, MSG_NOSIGNAL);
    if (n > 0) {
      c->sent += (size_t)n;
      if (c->sent < size) return 0;
    } else if (n < 0 && errno == EAGAIN) {
      return 0;
    } else if (n < 0 && errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

/* Read what EPOLLIN announced. Returns 0 when the run's time is up, else 1.
 * Ends without a call that returns EAGAIN: a short read drained the socket,
 * and a complete response cannot be followed by more bytes before the next
 * request is sent (strict request/response), so either way the next bytes
 * make a new edge. */
static int pump_recv(struct conn* c) {
  for (;;) {
    size_t want = size - c->received;
    ssize_t r = recv(c->fd, recvbuf, want, 0);
    if (r > 0) {
      c->received += (size_t)r;
      if (c->received < size) return 1; /* short read: drained */
      if (!complete(c)) return 0;
      if (pump_send(c) < 0) die("send");
      return 1;
    }
    if (r == 0) {
      fprintf(stderr, "loadclient: server closed a connection\n");
      exit(1);
    }
    if (errno == EAGAIN) return 1;
    if (errno != EINTR) die("recv");
  }
}

static void run_epoll(struct conn* conns, int nconns) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  for (int i = 0; i < nconns; i++) {
    int fd = conns[i].fd;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("O_NONBLOCK");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &conns[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  }
  for (int i = 0; i < nconns; i++)
    if (pump_send(&conns[i]) < 0) die("send");

  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    if (now_ns() >= end_ns) break;
    for (int e = 0; e < n; e++) {
      struct conn* c = events[e].data.ptr;
      uint32_t ev = events[e].events;
      if (ev & (EPOLLERR | EPOLLHUP)) {
        fprintf(stderr, "loadclient: connection closed by server\n");
        exit(1);
      }
      if (c->sent < size && pump_send(c) < 0) die("send");
      if ((ev & EPOLLIN) && !pump_recv(c)) goto done;
    }
  }
done:
  close(ep);
}

/* ------------------------------------------------------------------ uring */

/* The rings, mapped from the kernel. Only this thread touches them.
 * ordering: the kernel reads SQ tail with acquire, so SQE contents are
 *   published by our release store of *sq_tail; we read CQ tail with acquire,
 *   pairing with the kernel's release store after it wrote the CQEs; our
 *   release store of *cq_head hands the read CQE slots back. sq_head and
 *   cq_tail are written by the kernel only, sq_tail and cq_head by us only. */
struct uring {
  int fd;
  unsigned *sq_head, *sq_tail, sq_mask, sq_entries;
  struct io_uring_sqe* sqes;
  unsigned *cq_head, *cq_tail, cq_mask;
  struct io_uring_cqe* cqes;
  unsigned tail;  /* SQEs written so far (our copy of *sq_tail, ahead of it) */
  int poll_first; /* the kernel has IORING_RECVSEND_POLL_FIRST (5.19) */
};

/* user_data: connection index << 1 | operation */
enum { OP_SEND = 0, OP_RECV = 1 };

static int sys_io_uring_setup(unsigned entries, struct io_uring_params* p) {
  return (int)syscall(SYS_io_uring_setup, entries, p);
}

static int sys_io_uring_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                              const void* arg, size_t argsz) {
  return (int)syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
}

/* Set up a ring with room for ENTRIES submissions. Returns 0, or -1 with errno
 * set when io_uring is missing, forbidden (seccomp, kernel.io_uring_disabled)
 * or older than EXT_ARG (5.11), so that the caller can fall back to epoll. */
static int uring_init(struct uring* r, unsigned entries) {
  /* Completions run only inside our io_uring_enter (DEFER_TASKRUN, 6.1), so a
   * round processes them in one batch without interrupting us. */
  static const unsigned flag_sets[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                                           IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                       0};
  struct io_uring_params p;
  int fd = -1;
  size_t set = 0;
  for (; set < sizeof flag_sets / sizeof flag_sets[0]; set++) {
    memset(&p, 0, sizeof p);
    p.flags = flag_sets[set];
    fd = sys_io_uring_setup(entries, &p);
    if (fd >= 0) break;
    if (errno != EINVAL) return -1;
  }
  if (fd < 0) return -1;
  /* A kernel that takes DEFER_TASKRUN (6.1) has POLL_FIRST too. */
  r->poll_first = set == 0;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_EXT_ARG)) {
    close(fd);
    errno = ENOTSUP;
    return -1;
  }
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  size_t ring_len = sq_len > cq_len ? sq_len : cq_len;
  char* ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_SQ_RING);
  if (ring == MAP_FAILED) die("mmap io_uring rings");
  r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (r->sqes == MAP_FAILED) die("mmap io_uring SQEs");
  r->fd = fd;
  r->sq_head = (unsigned*)(ring + p.sq_off.head);
  r->sq_tail = (unsigned*)(ring + p.sq_off.tail);
  r->sq_mask = *(unsigned*)(ring + p.sq_off.ring_mask);
  r->sq_entries = p.sq_entries;
  r->cq_head = (unsigned*)(ring + p.cq_off.head);
  r->cq_tail = (unsigned*)(ring + p.cq_off.tail);
  r->cq_mask = *(unsigned*)(ring + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe*)(ring + p.cq_off.cqes);
  r->tail = *r->sq_tail;
  /* SQ slot i always holds SQE i: entries are consumed in order. */
  unsigned* array = (unsigned*)(ring + p.sq_off.array);
  for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i;
  return 0;
}

/* Queue a SEND of the rest of C's request or a RECV of the rest of its
 * response. POLL_FIRST (5.19) skips the receive attempt that would find the
 * socket empty right after the request went out. */
static void uring_queue(struct uring* r, struct conn* conns, struct conn* c, int op,
                        int poll_first) {
  /* ordering: acquire pairs with the kernel's release of sq_head once it has
   * read the SQEs before it, so their slots can be reused. */
  if (r->tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE) >= r->sq_entries) {
    /* Cannot happen: at most one SEND and one RECV per connection are queued
     * or in flight, and the ring has at least 2 * CONNS entries. */
    fprintf(stderr, "loadclient: io_uring submission queue full\n");
    exit(1);
  }
  struct io_uring_sqe* sqe = &r->sqes[r->tail & r->sq_mask];
  memset(sqe, 0, sizeof *sqe);
  sqe->fd = c->fd;
  if (op == OP_SEND) {
    sqe->opcode = IORING_OP_SEND;
    sqe->addr = (uint64_t)(uintptr_t)(sendbuf + c->sent);
    sqe->len = (unsigned)(size - c->sent);
    sqe->msg_flags = MSG_NOSIGNAL | MSG_WAITALL; /* WAITALL: kernel retries short sends */
  } else {
    sqe->opcode = IORING_OP_RECV;
    sqe->addr = (uint64_t)(uintptr_t)recvbuf;
    sqe->len = (unsigned)(size - c->received);
    sqe->msg_flags = MSG_WAITALL; /* kernel retries short receives */
    sqe->ioprio = poll_first && r->poll_first ? IORING_RECVSEND_POLL_FIRST : 0;
  }
  sqe->user_data = (uint64_t)(c - conns) << 1 | (uint64_t)op;
  r->tail++;
}

static void uring_fail(const char* what, int err) {
  fprintf(stderr, "loadclient: %s: %s\n", what, strerror(err));
  exit(1);
}

/* Handle one completion; returns 0 when the run's time is up. */
static int uring_complete(struct uring* r, struct conn* conns, const struct io_uring_cqe* cqe) {
  struct conn* c = &conns[cqe->user_data >> 1];
  int op = (int)(cqe->user_data & 1), res = cqe->res;
  if (res == -EAGAIN || res == -EINTR) {
    uring_queue(r, conns, c, op, 0);
    return 1;
  }
  if (res < 0) uring_fail(op == OP_SEND ? "send" : "recv", -res);
  if (op == OP_SEND) {
    c->sent += (size_t)res;
    if (c->sent < size) uring_queue(r, conns, c, OP_SEND, 0);
    return 1;
  }
  if (res == 0) {
    fprintf(stderr, "loadclient: server closed a connection\n");
    exit(1);
  }
  c->received += (size_t)res;
  if (c->received < size) {
    uring_queue(r, conns, c, OP_RECV, 0);
    return 1;
  }
  if (!complete(c)) return 0;
  uring_queue(r, conns, c, OP_SEND, 0);
  uring_queue(r, conns, c, OP_RECV, 1);
  return 1;
}

static void run_uring(struct uring* r, struct conn* conns, int nconns) {
  for (int i = 0; i < nconns; i++) {
    uring_queue(r, conns, &conns[i], OP_SEND, 0);
    uring_queue(r, conns, &conns[i], OP_RECV, 1);
  }
  for (;;) {
    uint64_t now = now_ns();
    if (now >= end_ns) break;
    uint64_t wait = end_ns - now < 100000000ull ? end_ns - now : 100000000ull;
    struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000ull),
                                   .tv_nsec = (long long)(wait % 1000000000ull)};
    struct io_uring_getevents_arg arg = {
        .sigmask = 0, .sigmask_sz = 0, .ts = (uint64_t)(uintptr_t)&ts};
    /* ordering: release publishes the SQEs written since the last round. */
    __atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
    unsigned to_submit = r->tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    /* Submits, then waits for one completion or the timeout. Unsubmitted
     * entries (ret < to_submit) stay queued for the next round. */
    int ret = sys_io_uring_enter(r->fd, to_submit, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                                 &arg, sizeof arg);
    if (ret < 0 && errno != ETIME && errno != EINTR && errno != EAGAIN && errno != EBUSY)
      die("io_uring_enter");
    unsigned head = *r->cq_head;
    /* ordering: acquire pairs with the kernel's release after writing CQEs. */
    unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    int running = 1;
    for (; head != tail && running; head++)
      running = uring_complete(r, conns, &r->cqes[head & r->cq_mask]);
    /* ordering: release: the CQEs before HEAD are read, the kernel may reuse them. */
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
    if (!running) break;
  }
  close(r->fd);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: %s HOST PORT CONNS SIZE SECONDS [epoll|uring|auto]\n", argv[0]);
    return 2;
  }
  const char *host = argv[1], *port = argv[2], *mode = argc == 7 ? argv[6] : "auto";
  int nconns = atoi(argv[3]);
  size = (size_t)atol(argv[4]);
  double seconds = atof(argv[5]);
  if (nconns < 1 || nconns > 16384 || size < 1 || size > 0x7fffffff || seconds <= 0 ||
      (strcmp(mode, "epoll") != 0 && strcmp(mode, "uring") != 0 && strcmp(mode, "auto") != 0)) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }

  /* Pick the mode before connecting: uring keeps the sockets blocking (the
   * ring polls them itself), epoll makes them non-blocking. */
  struct uring ring;
  int use_uring = 0;
  if (strcmp(mode, "epoll") != 0) {
    /* At most one SEND and one RECV per connection at any time. */
    unsigned entries = 1;
    while (entries < 2u * (unsigned)nconns) entries <<= 1;
    if (uring_init(&ring, entries) == 0) {
      use_uring = 1;
    } else if (strcmp(mode, "uring") == 0) {
      perror("loadclient: io_uring_setup");
      return 1;
    } else {
      fprintf(stderr, "loadclient: io_uring unavailable (%s), using epoll\n", strerror(errno));
    }
  }

  struct addrinfo hints = {0}, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0) {
    fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
    return 1;
  }

  char* request = malloc(size);
  recvbuf = malloc(size);
  struct conn* conns = calloc((size_t)nconns, sizeof *conns);
  if (!request || !recvbuf || !conns) die("malloc");
  for (size_t i = 0; i < size; i++) request[i] = (char)('a' + i % 26);
  sendbuf = request;

  /* Connect (blocking, so every connection is up before timing starts). */
  for (int i = 0; i < nconns; i++) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) die("socket");
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) die("connect");
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
    conns[i].fd = fd;
  }
  freeaddrinfo(ai);

  uint64_t t0 = now_ns();
  end_ns = t0 + (uint64_t)(seconds * 1e9);
  for (int i = 0; i < nconns; i++) conns[i].start_ns = t0;
  if (use_uring)
    run_uring(&ring, conns, nconns);
  else
    run_epoll(conns, nconns);

  double elapsed = (double)(now_ns() - t0) / 1e9;
  printf("req_per_sec=%.1f p50_us=%llu p99_us=%llu requests=%llu conns=%d size=%zu mode=%s\n",
         (double)requests / elapsed, (unsigned long long)percentile(requests, 0.50),
         (unsigned long long)percentile(requests, 0.99), (unsigned long long)requests, nconns, size,
         use_uring ? "uring" : "epoll");
  for (int i = 0; i < nconns; i++) close(conns[i].fd);
  return 0;
}

/* Echo load client for weft's side-by-side benchmarks (issue 6).
 *
 *   loadclient HOST PORT CONNS SIZE SECONDS
 *
 * Opens CONNS TCP connections (TCP_NODELAY, non-blocking, one epoll, one
 * thread). Each connection repeats: send SIZE bytes, wait until SIZE bytes
 * have come back, record the round-trip time. Runs for SECONDS after all
 * connections are up and prints one line:
 *   req_per_sec=<x> p50_us=<..> p99_us=<..> requests=<n> conns=<c> size=<s>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
  int fd;
  size_t sent;     /* bytes of the current request written */
  size_t received; /* bytes of the current response read */
  uint64_t start_ns;
};

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

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Write as much of the request as the socket takes; returns -1 on error. */
static int pump_send(struct conn *c, const char *buf, size_t size) {
  while (c->sent < size) {
    ssize_t n = send(c->fd, buf + c->sent, size - c->sent, MSG_NOSIGNAL);
    if (n > 0) c->sent += (size_t)n;
    else if (n < 0 && errno == EAGAIN) return 0;
    else if (n < 0 && errno == EINTR) continue;
    else return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s HOST PORT CONNS SIZE SECONDS\n", argv[0]);
    return 2;
  }
  const char *host = argv[1], *port = argv[2];
  int nconns = atoi(argv[3]);
  size_t size = (size_t)atol(argv[4]);
  double seconds = atof(argv[5]);
  if (nconns < 1 || size < 1 || seconds <= 0) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }

  struct addrinfo hints = {0}, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0) {
    fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
    return 1;
  }

  char *sendbuf = malloc(size), *recvbuf = malloc(size < 65536 ? 65536 : size);
  for (size_t i = 0; i < size; i++) sendbuf[i] = (char)('a' + i % 26);
  struct conn *conns = calloc((size_t)nconns, sizeof *conns);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");

  /* Connect (blocking, so every connection is up before timing starts). */
  for (int i = 0; i < nconns; i++) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) die("socket");
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) die("connect");
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("O_NONBLOCK");
    conns[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &conns[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  }
  freeaddrinfo(ai);

  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), requests = 0;
  for (int i = 0; i < nconns; i++) {
    conns[i].start_ns = t0;
    if (pump_send(&conns[i], sendbuf, size) < 0) die("send");
  }

  struct epoll_event events[256];
  uint64_t now = t0;
  int running = 1;
  while (running) {
    int n = epoll_wait(ep, events, 256, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    now = now_ns();
    if (now >= end) break;
    for (int e = 0; e < n; e++) {
      struct conn *c = events[e].data.ptr;
      if (events[e].events & (EPOLLERR | EPOLLHUP)) {
        fprintf(stderr, "loadclient: connection closed by server\n");
        return 1;
      }
      /* Edge-triggered: drain reads, then push any unsent request bytes. */
      for (;;) {
        if (c->sent < size && pump_send(c, sendbuf, size) < 0) die("send");
        ssize_t r = recv(c->fd, recvbuf, size - c->received, 0);
        if (r > 0) {
          c->received += (size_t)r;
          if (c->received == size) {
            uint64_t t = now_ns();
            record(t - c->start_ns);
            requests++;
            if (t >= end) {
              running = 0;
              break;
            }
            c->sent = c->received = 0;
            c->start_ns = t;
            if (pump_send(c, sendbuf, size) < 0) die("send");
          }
        } else if (r == 0) {
          fprintf(stderr, "loadclient: server closed a connection\n");
          return 1;
        } else if (errno == EAGAIN) {
          break;
        } else if (errno != EINTR) {
          die("recv");
        }
      }
    }
  }
  double elapsed = (double)(now_ns() - t0) / 1e9;
  printf("req_per_sec=%.1f p50_us=%llu p99_us=%llu requests=%llu conns=%d size=%zu\n",
         (double)requests / elapsed, (unsigned long long)percentile(requests, 0.50),
         (unsigned long long)percentile(requests, 0.99), (unsigned long long)requests, nconns, size);
  for (int i = 0; i < nconns; i++) close(conns[i].fd);
  return 0;
}

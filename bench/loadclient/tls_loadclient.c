/* TLS load client for weft's side-by-side benchmarks (issue 16).
 *
 *   tls_loadclient HOST PORT CONNS SIZE SECONDS          TLS echo
 *   tls_loadclient HOST PORT CONNS handshake SECONDS     full handshakes
 *
 * Echo: opens CONNS TCP connections (TCP_NODELAY) and completes every TLS
 * handshake before the clock starts (the sessions are set up before timing);
 * then each connection repeats: write SIZE bytes, read SIZE bytes back
 * (strict request/response, one request in flight per connection), for
 * SECONDS. Prints
 *   req_per_sec=<x> p50_us=<..> p99_us=<..> requests=<n> conns=<c> size=<s> mode=tls
 *
 * Handshake: CONNS connections at a time, each: connect, a full TLS 1.3
 * handshake (never resumed: the client keeps no session), one byte echoed
 * (so the server has finished its side too), close_notify, close; then the
 * next connection in that slot. Prints
 *   req_per_sec=<handshakes per second> p50_us=.. p99_us=.. requests=<n> conns=<c> size=0 mode=tls_handshake
 *
 * Every server meets the same client offer: TLS 1.3 only, the one cipher
 * suite TLS_AES_128_GCM_SHA256 and the one group X25519, so the servers do
 * the same cryptography. The client does not verify the server's certificate
 * (verification is the client's cost, not the server's). One thread, level
 * triggered epoll, non-blocking OpenSSL; errors print a message and exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { HANDSHAKING, WRITING, READING, CLOSED };

struct conn {
  int fd;
  SSL* ssl;
  enum state st;
  uint32_t events; /* what epoll watches for this fd now */
  int added;       /* the fd is in the epoll set */
  size_t done;     /* bytes of the current request written or response read */
  uint64_t start_ns;
};

static SSL_CTX* ctx;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static int ep;
static size_t size;     /* request and response size; 1 in handshake mode */
static char* sendbuf;   /* the request */
static char* recvbuf;   /* scratch for responses */
static int handshake_mode;
static int timing;      /* the clock runs: count and record */
static uint64_t requests;
static uint64_t* lat;   /* round trip (or connection) times, ns */
static size_t nlat, caplat;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char* what) {
  fprintf(stderr, "tls_loadclient: %s: %s", what, errno ? strerror(errno) : "");
  ERR_print_errors_fp(stderr);
  fprintf(stderr, "\n");
  exit(1);
}

static void record(uint64_t ns) {
  if (nlat == caplat) {
    caplat = caplat ? caplat * 2 : 1 << 16;
    lat = realloc(lat, caplat * sizeof *lat);
    if (!lat) die("realloc");
  }
  lat[nlat++] = ns;
}

static void watch(struct conn* c, uint32_t events) {
  if (c->added && c->events == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, c->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
  c->events = events;
  c->added = 1;
}

static void open_conn(struct conn* c) {
  c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr*)&addr, addrlen) != 0 && errno != EINPROGRESS)
    die("connect");
  c->ssl = SSL_new(ctx);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) die("SSL_new");
  SSL_set_connect_state(c->ssl);
  c->st = HANDSHAKING;
  c->added = 0;
  c->done = 0;
  c->start_ns = now_ns();
  watch(c, EPOLLOUT);
}

static void close_conn(struct conn* c) {
  SSL_shutdown(c->ssl); /* close_notify, not waiting for the peer's */
  SSL_free(c->ssl);
  close(c->fd); /* leaves the epoll set with it */
  c->st = CLOSED;
}

/* Wait for what OpenSSL asked for; anything else is fatal. */
static int want(struct conn* c, int r, const char* what) {
  int err = SSL_get_error(c->ssl, r);
  if (err == SSL_ERROR_WANT_READ) {
    watch(c, EPOLLIN);
    return 1;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    watch(c, EPOLLOUT);
    return 1;
  }
  errno = 0;
  if (err == SSL_ERROR_ZERO_RETURN) fprintf(stderr, "tls_loadclient: %s: the server closed\n", what);
  die(what);
  return 0;
}

/* Runs one connection as far as it can go without waiting. */
static void drive(struct conn* c) {
  for (;;) {
    switch (c->st) {
      case HANDSHAKING: {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
          want(c, r, "handshake");
          return;
        }
        c->st = WRITING;
        c->done = 0;
        if (!handshake_mode) c->start_ns = now_ns();
        break;
      }
      case WRITING: {
        if (!handshake_mode && !timing) { /* set up: wait for the clock */
          watch(c, 0 /* nothing: parked */);
          return;
        }
        size_t n = 0;
        int r = SSL_write_ex(c->ssl, sendbuf, size, &n);
        if (r != 1) {
          want(c, r, "write");
          return;
        }
        c->st = READING;
        c->done = 0;
        break;
      }
      case READING: {
        size_t n = 0;
        int r = SSL_read_ex(c->ssl, recvbuf, size - c->done, &n);
        if (r != 1) {
          want(c, r, "read");
          return;
        }
        c->done += n;
        if (c->done < size) break;
        uint64_t t = now_ns();
        if (timing) {
          ++requests;
          record(t - c->start_ns);
        }
        if (handshake_mode) {
          close_conn(c);
          open_conn(c);
          return;
        }
        c->start_ns = t;
        c->st = WRITING;
        c->done = 0;
        break;
      }
      case CLOSED:
        return;
    }
  }
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: tls_loadclient HOST PORT CONNS SIZE|handshake SECONDS\n");
    return 2;
  }
  int conns = atoi(argv[3]);
  handshake_mode = strcmp(argv[4], "handshake") == 0;
  size = handshake_mode ? 1 : (size_t)atol(argv[4]);
  double seconds = atof(argv[5]);
  if (conns < 1 || size < 1 || seconds <= 0) {
    fprintf(stderr, "tls_loadclient: bad arguments\n");
    return 2;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0) die("getaddrinfo");
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);

  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1) die("ciphersuites");
  if (SSL_CTX_set1_groups_list(ctx, "X25519") != 1) die("groups");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

  sendbuf = malloc(size);
  recvbuf = malloc(size);
  if (!sendbuf || !recvbuf) die("malloc");
  for (size_t i = 0; i < size; ++i) sendbuf[i] = (char)('a' + i % 26);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct conn* cs = calloc((size_t)conns, sizeof *cs);
  struct epoll_event* evs = calloc((size_t)conns, sizeof *evs);
  if (!cs || !evs) die("calloc");
  for (int i = 0; i < conns; ++i) open_conn(&cs[i]);

  if (!handshake_mode) { /* every session set up, then the clock */
    int left = conns;
    while (left > 0) {
      int n = epoll_wait(ep, evs, conns, 10000);
      if (n <= 0) die("handshakes before the run (timed out)");
      for (int i = 0; i < n; ++i) {
        struct conn* c = evs[i].data.ptr;
        drive(c);
        if (c->st == WRITING) --left;
      }
    }
  }
  timing = 1;
  uint64_t t0 = now_ns();
  uint64_t end = t0 + (uint64_t)(seconds * 1e9);
  if (!handshake_mode)
    for (int i = 0; i < conns; ++i) {
      cs[i].start_ns = t0;
      drive(&cs[i]);
    }
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end) break;
    int n = epoll_wait(ep, evs, conns, (int)((end - t) / 1000000) + 1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) drive(evs[i].data.ptr);
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  qsort(lat, nlat, sizeof *lat, cmp_u64);
  double p50 = nlat ? (double)lat[nlat / 2] / 1e3 : 0;
  double p99 = nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0;
  printf("req_per_sec=%.1f p50_us=%.1f p99_us=%.1f requests=%llu conns=%d size=%zu mode=%s\n",
         (double)requests / secs, p50, p99, (unsigned long long)requests, conns,
         handshake_mode ? (size_t)0 : size, handshake_mode ? "tls_handshake" : "tls");
  return 0;
}

/* A bare OpenSSL TLS echo server: the floor for weft's TLS costs (issue 16).
 *
 *   tls_echo_server PORT CERT KEY
 *
 * One thread, level-triggered epoll, non-blocking sockets driven by OpenSSL's
 * own socket BIO (SSL_set_fd): no runtime, no buffering of its own. Each
 * connection echoes what it reads (a 16 KiB buffer, as the Go and Tokio
 * peers) until the client closes. The context is set up as weft's server
 * context is (TLS 1.2 minimum, no compression, no renegotiation) and sends one
 * session ticket per full handshake (bench/run gives weft --tickets 1, and Go
 * and rustls send one), so a handshake costs what OpenSSL itself costs with
 * the same certificate. bench/run runs it as the peer "openssl" for the tls
 * workload at its smallest worker count (it is single-threaded).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
  int fd;
  SSL* ssl;
  int handshaken;
  size_t have; /* bytes read and not yet written back */
  size_t off;  /* of them, written */
  uint32_t events;
  char buf[16 * 1024];
};

static int ep;

static void die(const char* what) {
  fprintf(stderr, "tls_echo_server: %s: %s\n", what, errno ? strerror(errno) : "");
  ERR_print_errors_fp(stderr);
  exit(1);
}

static void watch(struct conn* c, uint32_t events) {
  if (c->events == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
  c->events = events;
}

static void drop(struct conn* c) {
  SSL_free(c->ssl);
  close(c->fd);
  free(c);
  ERR_clear_error();
}

/* Runs one connection until OpenSSL has to wait; 0 when it is gone. */
static int drive(struct conn* c) {
  for (;;) {
    int r;
    if (!c->handshaken) {
      r = SSL_do_handshake(c->ssl);
      if (r == 1) {
        c->handshaken = 1;
        continue;
      }
    } else if (c->off < c->have) {
      size_t n = 0;
      r = SSL_write_ex(c->ssl, c->buf + c->off, c->have - c->off, &n);
      if (r == 1) {
        c->off += n;
        if (c->off == c->have) c->off = c->have = 0;
        continue;
      }
    } else {
      size_t n = 0;
      r = SSL_read_ex(c->ssl, c->buf, sizeof c->buf, &n);
      if (r == 1) {
        c->have = n;
        continue;
      }
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
      watch(c, EPOLLIN);
      return 1;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
      watch(c, EPOLLOUT);
      return 1;
    }
    if (err == SSL_ERROR_ZERO_RETURN) SSL_shutdown(c->ssl); /* close_notify back */
    drop(c);
    return 0;
  }
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tls_echo_server PORT CERT KEY\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(ctx, 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1) die("certificate");
  if (SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) die("key");

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(lfd, (struct sockaddr*)&sin, sizeof sin) != 0) die("bind");
  if (listen(lfd, 1024) != 0) die("listen");
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0) die("epoll_ctl");
  printf("tls_echo_server: listening on 127.0.0.1:%s\n", argv[1]);
  fflush(stdout);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      struct conn* c = evs[i].data.ptr;
      if (c) {
        drive(c);
        continue;
      }
      for (;;) { /* the listener: every waiting connection */
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        if (!c) die("calloc");
        c->fd = fd;
        c->ssl = SSL_new(ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) die("SSL_new");
        SSL_set_accept_state(c->ssl);
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
      }
    }
  }
}

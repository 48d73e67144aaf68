/* The kernel's cost per byte of the ways a server can send a file without
 * reading it into user space (issue 19: is IORING_OP_SPLICE worth it over
 * sendfile(2) for StreamWriter::sendfile on the io_uring path?).
 *
 *   splice_server PORT FILE sendfile|splice|splice-64k|uring-splice
 *
 * Serves FILE whole to each connection (one at a time; filesink is the
 * client) and prints, per connection, the process's CPU time (utime +
 * stime of every thread, io_uring's io-wq workers included) per byte:
 *   bytes=<n> cpu_ns_per_byte=<x> seconds=<s>
 * sendfile:     sendfile(2) until the file ends (what weft and Go's io.Copy do).
 * splice:       splice(2) file -> pipe, pipe -> socket (1 MiB pipe).
 * splice-64k:   the same through a pipe of the default size (64 KiB, the
 *               size of the pipe sendfile(2) splices through inside).
 * uring-splice: the same two splices as one linked pair of IORING_OP_SPLICE
 *               requests per round, submitted and reaped by io_uring.
 * The socket is blocking: what is measured is the kernel's path, not a
 * readiness loop's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PIPE_SIZE (1 << 20)

static int g_pipe_size = PIPE_SIZE;

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long send_sendfile(int sock, int file, long long size) {
  off_t off = 0;
  while (off < size) {
    ssize_t n = sendfile(sock, file, &off, (size_t)(size - off));
    if (n <= 0) return n < 0 ? -1 : off;
  }
  return off;
}

static long long send_splice(int sock, int file, long long size) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  if (g_pipe_size != 64 * 1024) fcntl(p[1], F_SETPIPE_SZ, g_pipe_size);
  loff_t off = 0;
  long long sent = 0;
  while (sent < size) {
    ssize_t in = splice(file, &off, p[1], NULL, (size_t)g_pipe_size, SPLICE_F_MOVE);
    if (in <= 0) break;
    while (in > 0) {
      ssize_t out = splice(p[0], NULL, sock, NULL, (size_t)in, SPLICE_F_MOVE);
      if (out <= 0) goto done;
      in -= out;
      sent += out;
    }
  }
done:
  close(p[0]);
  close(p[1]);
  return sent;
}

static long long send_uring_splice(int sock, int file, long long size) {
  struct io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) != 0) return -1;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
  long long off = 0, sent = 0, in_pipe = 0;
  while (sent < size) {
    unsigned want = (unsigned)(size - off < PIPE_SIZE - in_pipe ? size - off : PIPE_SIZE - in_pipe);
    int reqs = 0;
    if (want > 0) {
      struct io_uring_sqe* in = io_uring_get_sqe(&ring);
      io_uring_prep_splice(in, file, off, p[1], -1, want, SPLICE_F_MOVE);
      in->flags |= IOSQE_IO_LINK;
      in->user_data = 1;
      ++reqs;
    }
    struct io_uring_sqe* out = io_uring_get_sqe(&ring);
    /* Takes what the pipe holds once the first splice is done (at most want + in_pipe). */
    io_uring_prep_splice(out, p[0], -1, sock, -1, (unsigned)(want + in_pipe), SPLICE_F_MOVE);
    out->user_data = 2;
    ++reqs;
    if (io_uring_submit_and_wait(&ring, (unsigned)reqs) < 0) break;
    for (int i = 0; i < reqs; ++i) {
      struct io_uring_cqe* cqe;
      if (io_uring_wait_cqe(&ring, &cqe) != 0) goto done;
      int res = cqe->res;
      unsigned long long which = cqe->user_data;
      io_uring_cqe_seen(&ring, cqe);
      if (res < 0) goto done;
      if (which == 1) {
        off += res;
        in_pipe += res;
      } else {
        in_pipe -= res;
        sent += res;
      }
    }
  }
done:
  close(p[0]);
  close(p[1]);
  io_uring_queue_exit(&ring);
  return sent;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: splice_server PORT FILE sendfile|splice|uring-splice\n");
    return 2;
  }
  const char* mode = argv[3];
  long long (*send_file)(int, int, long long) = NULL;
  if (strcmp(mode, "sendfile") == 0) send_file = send_sendfile;
  if (strcmp(mode, "splice") == 0) send_file = send_splice;
  if (strcmp(mode, "splice-64k") == 0) {
    send_file = send_splice;
    g_pipe_size = 64 * 1024;
  }
  if (strcmp(mode, "uring-splice") == 0) send_file = send_uring_splice;
  if (!send_file) {
    fprintf(stderr, "splice_server: unknown mode %s\n", mode);
    return 2;
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(ls, 16) != 0) {
    perror("splice_server: listen");
    return 1;
  }
  printf("splice_server: listening on 127.0.0.1:%s (%s)\n", argv[1], mode);
  fflush(stdout);
  for (;;) {
    int sock = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (sock < 0) continue;
    int file = open(argv[2], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (file < 0 || fstat(file, &st) != 0) {
      perror(argv[2]);
      return 1;
    }
    double c0 = cpu_seconds(), t0 = now();
    long long sent = send_file(sock, file, (long long)st.st_size);
    double c1 = cpu_seconds(), t1 = now();
    printf("mode=%s bytes=%lld cpu_ns_per_byte=%.3f seconds=%.2f\n", mode, sent,
           sent > 0 ? (c1 - c0) / (double)sent * 1e9 : 0.0, t1 - t0);
    fflush(stdout);
    close(file);
    close(sock);
  }
}

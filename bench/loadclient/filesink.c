/* File download client for the file_serve workload of weft's side-by-side
 * benchmarks (bench/run).
 *
 *   filesink HOST PORT EXPECTED_BYTES
 *
 * Connects, reads until the server closes (recv into one 1 MiB buffer; the
 * bytes are not looked at), and prints one line:
 *   bytes=<n> seconds=<s> mib_per_sec=<x>
 * Exits 1 if fewer or more than EXPECTED_BYTES arrived.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: filesink HOST PORT EXPECTED_BYTES\n");
    return 2;
  }
  long long expected = atoll(argv[3]);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "filesink: bad address %s\n", argv[1]);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr*)&addr, sizeof addr) < 0) {
    perror("filesink: connect");
    return 1;
  }
  static char buf[1 << 20];
  long long got = 0;
  double t0 = now();
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r < 0) {
      perror("filesink: recv");
      return 1;
    }
    if (r == 0) break;
    got += r;
  }
  double secs = now() - t0;
  close(fd);
  printf("bytes=%lld seconds=%.6f mib_per_sec=%.1f\n", got, secs, (double)got / 1048576.0 / secs);
  if (got != expected) {
    fprintf(stderr, "filesink: %lld bytes arrived, %lld expected\n", got, expected);
    return 1;
  }
  return 0;
}

// weft-ps: what the tasks of a running weft program are doing, from outside
// the process (`python -m asyncio ps` / `pstree`):
//
//   weft-ps SOCKET          one line per task: id, name, worker, state, what it awaits
//   weft-ps --tree SOCKET   every task's await chain, as a tree of who awaits whom
//
// SOCKET is the program's RunOptions::introspect path. Exit status: 0 on an
// answer, 1 when the program answers with an error, 2 for bad usage or when
// the socket cannot be reached.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

int usage() {
  std::fprintf(stderr, "usage: weft-ps [--tree] SOCKET\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool tree = false;
  const char* path = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--tree") == 0)
      tree = true;
    else if (argv[i][0] == '-' || path)
      return usage();
    else
      path = argv[i];
  }
  if (!path) return usage();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof addr.sun_path) {
    std::fprintf(stderr, "weft-ps: socket path too long: %s\n", path);
    return 2;
  }
  std::strcpy(addr.sun_path, path);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "weft-ps: cannot connect to %s: %s\n", path, std::strerror(errno));
    return 2;
  }
  const char* request = tree ? "tree\n" : "ps\n";
  if (::send(fd, request, std::strlen(request), MSG_NOSIGNAL) < 0) {
    std::fprintf(stderr, "weft-ps: cannot send to %s: %s\n", path, std::strerror(errno));
    return 2;
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::fprintf(stderr, "weft-ps: reading from %s: %s\n", path, std::strerror(errno));
      return 2;
    }
    if (n == 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (reply.rfind("error: ", 0) == 0) {
    std::fprintf(stderr, "weft-ps: %s", reply.c_str() + 7);
    return 1;
  }
  std::fwrite(reply.data(), 1, reply.size(), stdout);
  return 0;
}

// weft_file_server PORT WORKERS FILE sendfile|copy: the file server of the
// peer benchmark's file_serve workload (bench/run). Every connection gets the
// whole of FILE, then the server closes it. `sendfile` sends it with
// StreamWriter::sendfile (sendfile(2) from the page cache); `copy` reads it
// with weft::File (read_at, 1 MiB at a time: an io_uring request on a ring
// loop, pread on the blocking pool on epoll; the next read running while
// the last chunk drains) and writes each chunk, taken over without a copy.
// Listens on 127.0.0.1; runs until killed.
#include <weft/weft.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string g_path;
bool g_sendfile = true;

weft::Coro<void> send_with_sendfile(weft::StreamWriter writer) {
  const int fd = ::open(g_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::perror(g_path.c_str());
    co_return;
  }
  try {
    co_await writer.sendfile(fd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sendfile: %s\n", e.what());
  }
  ::close(fd);
}

weft::Coro<void> send_with_copy(weft::StreamWriter writer) {
  constexpr std::int64_t kChunk = 1 << 20;
  weft::File file = co_await weft::open_file(g_path, "rb");
  std::int64_t offset = 0;
  std::string chunk = co_await file.read_at(offset, kChunk);
  while (!chunk.empty()) {
    offset += static_cast<std::int64_t>(chunk.size());
    auto next = weft::create_task(file.read_at(offset, kChunk));
    writer.write(std::move(chunk));
    co_await writer.drain();
    chunk = co_await next;
  }
  co_await file.close();
}

weft::Coro<void> serve_one(weft::StreamReader, weft::StreamWriter writer) {
  try {
    if (g_sendfile)
      co_await send_with_sendfile(writer);
    else
      co_await send_with_copy(writer);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weft_file_server: %s\n", e.what());
  }
  writer.close();
}

weft::Coro<void> serve(std::uint16_t port) {
  weft::ClientHandler handler = serve_one;  // named: GCC 12
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", port);
  std::printf("weft_file_server: listening on %s\n", server.sockets().at(0).to_string().c_str());
  std::fflush(stdout);
  co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (std::string(argv[4]) != "sendfile" && std::string(argv[4]) != "copy")) {
    std::fprintf(stderr, "usage: weft_file_server PORT WORKERS FILE sendfile|copy\n");
    return 2;
  }
  auto port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  auto workers = static_cast<unsigned>(std::atoi(argv[2]));
  g_path = argv[3];
  g_sendfile = std::string(argv[4]) == "sendfile";
  weft::run(serve(port), {.workers = workers});
  return 0;
}

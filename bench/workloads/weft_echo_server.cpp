// weft_echo_server PORT WORKERS: the echo server of the peer benchmark
// (bench/run starts it and drives it with the C load client). Each
// connection echoes whatever arrives until the client closes. Listens on
// 127.0.0.1 with one SO_REUSEPORT socket per worker, so accepts spread over
// the workers. Runs until killed.
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

weft::Coro<void> echo(weft::StreamReader reader, weft::StreamWriter writer) {
  try {
    for (;;) {
      std::string data = co_await reader.read(64 * 1024);
      if (data.empty()) break;
      writer.write(data);
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // The client reset the connection.
  }
  writer.close();
}

weft::Coro<void> serve(std::uint16_t port) {
  weft::ServerOptions options;
  options.reuse_port = true;
  options.backlog = 1024;
  weft::ClientHandler handler = echo;  // named: GCC 12 mishandles the conversion in co_await
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", port, options);
  std::printf("weft_echo_server: listening on %s (%zu sockets)\n",
              server.sockets().at(0).to_string().c_str(), server.sockets().size());
  std::fflush(stdout);
  co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: weft_echo_server PORT WORKERS\n");
    return 2;
  }
  auto port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  auto workers = static_cast<unsigned>(std::atoi(argv[2]));
  weft::run(serve(port), {.workers = workers});
  return 0;
}

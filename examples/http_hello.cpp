// A minimal HTTP/1.1 keep-alive server that wrk can load:
//
//   http_hello [PORT] [WORKERS] [--duration SECONDS]
//   wrk -t2 -c64 -d10s http://127.0.0.1:8080/
//
// Every request gets "Hello, World!". Connections stay open until the client
// sends "Connection: close" or goes away. With more than one worker each
// worker has its own listening socket (SO_REUSEPORT), so accepts spread over
// the cores. Only what wrk and curl send is parsed: the request head; a
// request body (Content-Length) is read and discarded; a Content-Length that
// is not a decimal number gets "400 Bad Request" and the connection closes.
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http_serve.hpp"

namespace {

weft::Coro<void> main_coro(std::uint16_t port, double duration) {
  weft::ServerOptions options;
  options.reuse_port = true;
  options.backlog = 1024;
  weft::ClientHandler handler = http_hello::serve_client;  // named: see echo_server.cpp
  weft::Server server = co_await weft::start_server(handler, "0.0.0.0", port, options);
  std::printf("http_hello: serving on %s with %zu listening socket(s)\n",
              server.sockets().at(0).to_string().c_str(), server.sockets().size());
  std::fflush(stdout);
  if (duration > 0) {
    weft::get_running_loop().call_later(
        std::chrono::duration_cast<weft::Duration>(std::chrono::duration<double>(duration)),
        [server]() mutable { server.close(); });
  }
  co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 8080;
  unsigned workers = 0;
  double duration = 0;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--duration") == 0 && i + 1 < argc)
      duration = std::atof(argv[++i]);
    else if (positional++ == 0)
      port = static_cast<std::uint16_t>(std::atoi(argv[i]));
    else
      workers = static_cast<unsigned>(std::atoi(argv[i]));
  }
  weft::run(main_coro(port, duration), {.workers = workers});
  return 0;
}

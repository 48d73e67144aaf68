// The asyncio documentation's TCP echo server, line for line in spirit:
//
//   echo_server [PORT] [--duration SECONDS]
//
// Each connection: read up to 100 bytes, print them, echo them back, close.
// --duration closes the server after that many seconds (for CI); without it
// the server runs until killed. Try it with: echo hi | nc 127.0.0.1 8888
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

weft::Coro<void> handle_echo(weft::StreamReader reader, weft::StreamWriter writer) {
  std::string data = co_await reader.read(100);
  std::string addr = writer.peername() ? writer.peername()->to_string() : "?";
  std::printf("Received '%s' from %s\n", data.c_str(), addr.c_str());
  std::printf("Send: '%s'\n", data.c_str());
  writer.write(data);
  co_await writer.drain();
  std::printf("Close the connection\n");
  writer.close();
  co_await writer.wait_closed();
}

weft::Coro<void> main_coro(std::uint16_t port, double duration) {
  // The handler is a named std::function: GCC 12 mishandles a lambda or function
  // converted to std::function inside a co_await expression.
  weft::ClientHandler handler = handle_echo;
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", port);
  std::string addrs;
  for (const weft::Address& a : server.sockets())
    addrs += (addrs.empty() ? "" : ", ") + a.to_string();
  std::printf("Serving on %s\n", addrs.c_str());
  std::fflush(stdout);
  if (duration > 0) {
    weft::get_running_loop().call_later(
        std::chrono::duration_cast<weft::Duration>(std::chrono::duration<double>(duration)),
        [server]() mutable { server.close(); });
  }
  co_await server.serve_forever();
  co_await server.wait_closed();
}

int main(int argc, char** argv) {
  std::uint16_t port = 8888;
  double duration = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--duration") == 0 && i + 1 < argc)
      duration = std::atof(argv[++i]);
    else
      port = static_cast<std::uint16_t>(std::atoi(argv[i]));
  }
  weft::run(main_coro(port, duration), {.workers = 1});
  return 0;
}

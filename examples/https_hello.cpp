// http_hello over TLS (issue 16):
//
//   https_hello [PORT] [WORKERS] --cert FILE --key FILE [--duration SECONDS]
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1
//     -keyout key.pem -out cert.pem               (one command)
//   https_hello 8443 0 --cert cert.pem --key key.pem
//   curl --cacert cert.pem https://localhost:8443/
//
// The handshake happens before the handler runs (ServerOptions::ssl); the
// handler is http_hello's (http_serve.hpp): a TLS stream reads and writes as a
// plain one.
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http_serve.hpp"

namespace {

weft::Coro<void> main_coro(std::uint16_t port, double duration, weft::SslContext ctx) {
  weft::ServerOptions options;
  options.ssl = ctx;
  options.reuse_port = true;
  options.backlog = 1024;
  weft::ClientHandler handler = http_hello::serve_client;  // named: see echo_server.cpp
  weft::Server server = co_await weft::start_server(handler, "0.0.0.0", port, options);
  std::printf("https_hello: serving on %s with %zu listening socket(s)\n",
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
  std::string cert, key;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--duration") == 0 && i + 1 < argc)
      duration = std::atof(argv[++i]);
    else if (std::strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
      cert = argv[++i];
    else if (std::strcmp(argv[i], "--key") == 0 && i + 1 < argc)
      key = argv[++i];
    else if (positional++ == 0)
      port = static_cast<std::uint16_t>(std::atoi(argv[i]));
    else
      workers = static_cast<unsigned>(std::atoi(argv[i]));
  }
  if (cert.empty()) {
    std::fprintf(
        stderr,
        "usage: https_hello [PORT] [WORKERS] --cert FILE --key FILE [--duration SECONDS]\n");
    return 2;
  }
  weft::SslContext ctx = weft::SslContext::server();
  try {
    ctx.load_cert_chain(cert, key);
  } catch (const weft::SSLError& e) {
    std::fprintf(stderr, "https_hello: %s\n", e.what());
    return 1;
  }
  weft::run(main_coro(port, duration, ctx), {.workers = workers});
  return 0;
}

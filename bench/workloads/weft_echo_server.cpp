// weft_echo_server PORT WORKERS [--reuse-port] [--readinto] [--tls CERT KEY [--tickets N]]:
// the echo server of the peer benchmark (bench/run starts it and drives it with
// the C load client; with --tls, a TLS server driven by tls_loadclient). Each
// connection echoes whatever arrives until the client closes. Listens on
// 127.0.0.1 with one listening socket, as every peer's echo server does (the
// accepted connections live in that loop's selector; their handler tasks
// spread by stealing). --reuse-port opens one SO_REUSEPORT socket per worker
// instead, so accepts and connections spread over the workers' selectors
// (see bench/README.md for what that does on a 2-core machine shared with the
// load client). --readinto reads with StreamReader::readinto into one 64 KiB
// buffer per connection instead of read() (a string per read). Runs until
// killed.
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

weft::Coro<void> echo_readinto(weft::StreamReader reader, weft::StreamWriter writer) {
  std::vector<std::byte> buffer(64 * 1024);
  try {
    for (;;) {
      std::size_t n = co_await reader.readinto(buffer);
      if (n == 0) break;
      writer.write(std::string_view(reinterpret_cast<const char*>(buffer.data()), n));
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // The client reset the connection.
  } catch (const weft::SSLError&) {
    // The client sent something that is not TLS.
  }
  writer.close();
}

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
  } catch (const weft::SSLError&) {
    // The client sent something that is not TLS.
  }
  writer.close();
}

weft::Coro<void> serve(std::uint16_t port, bool reuse_port, bool readinto,
                       std::optional<weft::SslContext> ssl) {
  weft::ServerOptions options;
  options.reuse_port = reuse_port;
  options.ssl = std::move(ssl);
  options.backlog = 1024;
  // Named: GCC 12 mishandles the conversion in co_await.
  weft::ClientHandler handler = readinto ? weft::ClientHandler(echo_readinto) : echo;
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", port, options);
  std::printf("weft_echo_server: listening on %s (%zu sockets)\n",
              server.sockets().at(0).to_string().c_str(), server.sockets().size());
  std::fflush(stdout);
  co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
  bool reuse_port = false, readinto = false, bad = argc < 3;
  std::optional<weft::SslContext> ssl;
  for (int i = 3; !bad && i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--reuse-port") {
      reuse_port = true;
    } else if (arg == "--readinto") {
      readinto = true;
    } else if (arg == "--tickets" && i + 1 < argc && ssl) {
      ssl->set_num_tickets(static_cast<std::size_t>(std::atoi(argv[++i])));
    } else if (arg == "--tls" && i + 2 < argc) {
      ssl = weft::SslContext::server();
      ssl->load_cert_chain(argv[i + 1], argv[i + 2]);
      i += 2;
    } else {
      bad = true;
    }
  }
  if (bad) {
    std::fprintf(stderr,
                 "usage: weft_echo_server PORT WORKERS [--reuse-port] [--readinto] [--tls CERT KEY "
                 "[--tickets N]]\n");
    return 2;
  }
  auto port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  auto workers = static_cast<unsigned>(std::atoi(argv[2]));
  weft::run(serve(port, reuse_port, readinto, std::move(ssl)), {.workers = workers});
  return 0;
}

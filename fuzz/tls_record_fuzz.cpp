// TLS records from a hostile peer (issue 17, item 1): the fuzzer's bytes
// arrive, as the other side's records, at weft's TLS engine (OpenSSL on
// memory BIOs inside the stream transport), over a socket pair on a
// standalone EventLoop. The first byte picks the case:
//   0  client handshake: the bytes are the "server's" reply to our hello
//   1  server handshake: the bytes are the "client's" hello and what follows
//   2  an established connection (a weft client and server, a real
//      handshake), then the bytes injected towards the server, which reads
//   3  the same towards the client
// Every case ends with the peer's EOF. What is checked: no crash, leak or
// hang (ASan, the corpus test's leak check, a 10 s bound), and every
// failure is typed: SSLError (a malformed or undecryptable record, an alert)
// or std::system_error (the peer's EOF or reset mid-handshake). A file of
// its own: it drives the engine only through the transport, apart from the
// engine's sources and tests.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/detail/handle_access.hpp>
#include <weft/weft.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <typeinfo>
#include <utility>

#include "fuzz_input.hpp"
#include "harness.hpp"
#include "transport.hpp"  // io/src: make_transport, tls_handshake, StreamOwner

namespace {

using namespace std::chrono_literals;

// A self-signed P-256 certificate for CN=fuzz (valid until 2126), made with
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
//     -days 36500 -subj /CN=fuzz
// for the server side; nothing verifies it.
constexpr char kCert[] = R"(-----BEGIN CERTIFICATE-----
MIIBdDCCARugAwIBAgIUFvJPzx+qNg9rVgwJto2COE9TBo0wCgYIKoZIzj0EAwIw
DzENMAsGA1UEAwwEZnV6ejAgFw0yNjEyMDcyMTM2MzJaGA8yMTI2MTExMzIxMzYz
MlowDzENMAsGA1UEAwwEZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD1W
c96P71OoHDfdDcuUsbOrljwrkOGc0MCZ2NpKmRrsqyTy8U0s93BrZbeN5IiyrWcB
DADLzmjCvuvkRqKCN1OjUzBRMB0GA1UdDgQWBBTfl2jjZH+wrGTKIY4FfAt85/c6
bjAfBgNVHSMEGDAWgBTfl2jjZH+wrGTKIY4FfAt85/c6bjAPBgNVHRMBAf8EBTAD
AQH/MAoGCCqGSM49BAMCA0cAMEQCICc8LzACoAk7G+nQi9fQuLDFdxMgy+dJx0T5
npzh+Q/uAiAUEwG/PP4NBMKDBIA0g31lp2RkVBHOlKjLGOPk7Tb9/A==
-----END CERTIFICATE-----
)";
constexpr char kKey[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgF4kMMJc04W0N95HY
h2yWtBgyhmJ8TkMyHTvFHmADNomhRANCAAQ9VnPej+9TqBw33Q3LlLGzq5Y8K5Dh
nNDAmdjaSpka7Ksk8vFNLPdwa2W3jeSIsq1nAQwAy85owr7r5EaigjdT
-----END PRIVATE KEY-----
)";

const weft::SslContext& server_context() {
  static const weft::SslContext ctx = [] {
    weft::SslContext c = weft::SslContext::server();
    c.load_cert_chain_pem(kCert, kKey);
    return c;
  }();
  return ctx;
}

const weft::SslContext& client_context() {
  static const weft::SslContext ctx = [] {
    weft::SslContext c = weft::SslContext::client();
    c.set_check_hostname(false);
    c.set_verify_mode(weft::VerifyMode::none);
    return c;
  }();
  return ctx;
}

[[noreturn]] void fail(const std::string& what) { weft::fuzz::fail("tls_record", what); }

/// The typed failures a hostile peer may cause; anything else is a finding.
void expect_typed(std::exception_ptr e, const char* where) {
  try {
    std::rethrow_exception(e);
  } catch (const weft::SSLError&) {
  } catch (const std::system_error&) {
  } catch (const std::exception& x) {
    fail(std::string(where) + ": an untyped error: " + typeid(x).name() + ": " + x.what());
  } catch (...) {
    fail(std::string(where) + ": a non-std exception");
  }
}

/// The peer: writes `bytes` (as many as the socket takes) and its EOF.
void peer_sends(int fd, std::string_view bytes) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
}

using Streams = std::pair<weft::StreamReader, weft::StreamWriter>;

/// A weft server-side TLS stream over `fd` (what Server does per connection).
weft::Coro<Streams> server_streams(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  auto t = weft::detail::make_transport(fd, weft::detail::FdKind::socket, true, true,
                                        weft::kDefaultStreamLimit);
  auto owner = std::make_shared<weft::detail::StreamOwner>(t);  // closes it if we throw
  co_await weft::detail::tls_handshake(t, weft::detail::HandleAccess::state(server_context()), true,
                                       {}, 10s, 1s);
  co_return Streams(weft::detail::HandleAccess::make<weft::StreamReader>(t->reader(), owner),
                    weft::detail::HandleAccess::make<weft::StreamWriter>(t, owner));
}

weft::Coro<Streams> client_streams(int fd) {
  weft::ConnectOptions options;
  options.sock = fd;
  options.ssl = client_context();
  options.server_hostname = "fuzz";
  options.ssl_handshake_timeout = 10s;
  options.ssl_shutdown_timeout = 1s;
  co_return co_await weft::open_connection("", 0, options);
}

weft::Coro<void> close_streams(weft::StreamWriter writer) {
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const std::exception&) {
    expect_typed(std::current_exception(), "wait_closed");
  }
}

/// Reads to EOF: whatever the engine makes of the records, or a typed error.
weft::Coro<void> read_all(weft::StreamReader reader, const char* where) {
  try {
    (void)co_await reader.read(-1);
  } catch (const std::exception&) {
    expect_typed(std::current_exception(), where);
  }
}

/// Cases 0 and 1: one weft side's handshake against the fuzzer's bytes.
weft::Coro<void> handshake_against(bool server_side, std::string bytes) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair");
  peer_sends(sv[1], bytes);
  std::optional<Streams> streams;
  try {
    streams = server_side ? co_await server_streams(sv[0]) : co_await client_streams(sv[0]);
  } catch (const std::exception&) {
    expect_typed(std::current_exception(), server_side ? "server handshake" : "client handshake");
  }
  if (streams) {
    // The bytes made a handshake (only a real peer's could): read the rest.
    // (Named before co_await: GCC 12 double-destroys temporaries there.)
    weft::Coro<void> read = read_all(streams->first, server_side ? "server read" : "client read");
    co_await std::move(read);
    weft::Coro<void> close = close_streams(streams->second);
    co_await std::move(close);
  }
  ::close(sv[1]);
}

/// Cases 2 and 3: a real handshake, then the bytes towards one side.
weft::Coro<void> records_after_handshake(bool to_server, std::string bytes) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair");
  // The injector writes on the other side's socket, beside its TLS engine.
  const int inject = ::fcntl(to_server ? sv[1] : sv[0], F_DUPFD_CLOEXEC, 0);
  weft::Task<Streams> server = weft::create_task(server_streams(sv[0]));
  weft::Task<Streams> client = weft::create_task(client_streams(sv[1]));
  std::optional<Streams> s, c;
  try {
    s = co_await server;
    c = co_await client;
  } catch (const std::exception& e) {
    fail(std::string("the real handshake failed: ") + e.what());
  }
  peer_sends(inject, bytes);
  weft::Coro<void> read =
      read_all(to_server ? s->first : c->first, to_server ? "server read" : "client read");
  co_await std::move(read);
  ::close(inject);
  weft::Coro<void> close_server = close_streams(s->second);
  co_await std::move(close_server);
  weft::Coro<void> close_client = close_streams(c->second);
  co_await std::move(close_client);
}

weft::Coro<void> run_case(unsigned which, std::string bytes) {
  weft::Coro<void> body = which < 2 ? handshake_against(which == 1, std::move(bytes))
                                    : records_after_handshake(which == 2, std::move(bytes));
  try {
    co_await weft::wait_for(std::move(body), weft::Duration(10s));
  } catch (const weft::TimeoutError&) {
    fail("case " + std::to_string(which) + " did not end within 10 s");
  }
}

}  // namespace

int weft_fuzz_tls_record(const std::uint8_t* data, std::size_t size) {
  weft::fuzz::FuzzInput in(data, size);
  const unsigned which = in.byte() % 4;
  std::string bytes(reinterpret_cast<const char*>(data) + (size ? 1 : 0), size ? size - 1 : 0);
  if (bytes.size() > 65536) bytes.resize(65536);
  weft::EventLoop loop;
  loop.run_until_complete(run_case(which, std::move(bytes)));
  return 0;
}

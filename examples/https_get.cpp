// Fetches one https:// URL and prints the body (issue 16):
//
//   https_get URL [--cafile FILE] [--insecure]
//   https_get https://localhost:8443/ --cafile cert.pem
//
// The server's certificate is verified against the system's CA store (or
// --cafile) and its name checked, as Python's ssl.create_default_context();
// --insecure turns both off. A verification failure prints OpenSSL's reason
// ("certificate has expired", "Hostname mismatch") and exits with 1. HTTP/1.1
// with Connection: close: the body is everything after the head (chunked
// bodies are printed as they come).
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Url {
  std::string host;
  std::uint16_t port = 443;
  std::string path = "/";
};

bool parse_url(const std::string& url, Url& out) {
  const std::string scheme = "https://";
  if (url.compare(0, scheme.size(), scheme) != 0) return false;
  std::string rest = url.substr(scheme.size());
  std::size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) out.path = rest.substr(slash);
  std::size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    out.port = static_cast<std::uint16_t>(std::atoi(authority.c_str() + colon + 1));
    authority.resize(colon);
  }
  if (authority.size() > 2 && authority.front() == '[')
    authority = authority.substr(1, authority.size() - 2);
  out.host = authority;
  return !out.host.empty() && out.port != 0;
}

weft::Coro<int> fetch(Url url, weft::SslContext ctx) {
  weft::ConnectOptions options;
  options.ssl = ctx;
  options.ssl_handshake_timeout = std::chrono::seconds(10);
  options.timeout = std::chrono::seconds(10);
  try {
    auto [reader, writer] = co_await weft::open_connection(url.host, url.port, options);
    std::string request = "GET " + url.path + " HTTP/1.1\r\nHost: " + url.host +
                          "\r\nUser-Agent: weft-https_get\r\nConnection: close\r\n\r\n";
    writer.write(request);
    co_await writer.drain();
    std::string response = co_await reader.read(-1);
    writer.close();
    std::size_t body = response.find("\r\n\r\n");
    if (body == std::string::npos) {
      std::fprintf(stderr, "https_get: no HTTP response head\n");
      co_return 1;
    }
    std::fwrite(response.data() + body + 4, 1, response.size() - body - 4, stdout);
    co_return 0;
  } catch (const weft::SSLCertVerificationError& e) {
    std::fprintf(stderr, "https_get: %s\n", e.what());
  } catch (const weft::SSLError& e) {
    std::fprintf(stderr, "https_get: TLS error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "https_get: %s\n", e.what());
  }
  co_return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url_text, cafile;
  bool insecure = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--cafile") == 0 && i + 1 < argc)
      cafile = argv[++i];
    else if (std::strcmp(argv[i], "--insecure") == 0)
      insecure = true;
    else
      url_text = argv[i];
  }
  Url url;
  if (!parse_url(url_text, url)) {
    std::fprintf(stderr,
                 "usage: https_get https://HOST[:PORT][/PATH] [--cafile FILE] [--insecure]\n");
    return 2;
  }
  weft::SslContext ctx = weft::SslContext::client();
  try {
    if (!cafile.empty()) ctx.load_verify_file(cafile);
  } catch (const weft::SSLError& e) {
    std::fprintf(stderr, "https_get: %s\n", e.what());
    return 2;
  }
  if (insecure) {
    ctx.set_check_hostname(false);
    ctx.set_verify_mode(weft::VerifyMode::none);
  }
  return weft::run(fetch(url, ctx), {.workers = 1});
}

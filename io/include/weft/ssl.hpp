// TLS: SslContext, TLS errors and connection details (asyncio's ssl=
// arguments).
//
//   weft::SslContext ctx = weft::SslContext::client();   // verifies, checks the host name
//   weft::ConnectOptions opts;
//   opts.ssl = ctx;
//   auto [r, w] = co_await weft::open_connection("example.org", 443, opts);
//
//   weft::SslContext srv = weft::SslContext::server();
//   srv.load_cert_chain("cert.pem", "key.pem");
//   weft::ServerOptions sopts;
//   sopts.ssl = srv;
//   weft::Server s = co_await weft::start_server(handler, "0.0.0.0", 8443, sopts);
//
// Where it lives: TLS is part of weft::io, not a separate target. The engine
// sits inside the connection's transport (it sees every received byte before
// the StreamReader and every written byte before the socket), so a separate
// library would need io to link it and it to link io. OpenSSL 3 is linked
// privately; no OpenSSL header is reachable from weft's public headers.
//
// The engine runs OpenSSL on memory BIOs: the transport reads ciphertext
// from the socket (io_uring or epoll, the same code as plain streams) and the
// engine decrypts it into the StreamReader; writes are encrypted into the
// transport's write buffer. Flow control is the plain streams': drain() waits
// on the ciphertext buffered, and the socket stops being read while the
// reader holds more than 2 * limit plaintext bytes.
//
// Threading: configure an SslContext (load_*, set_*) before the first
// connection uses it; afterwards it may be shared by any number of
// connections on any workers. The handles are cheap copies of one context.
#pragma once

#include <weft/detail/handle_access.hpp>
#include <weft/errors.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weft {

namespace detail {
struct SslContextState;
}  // namespace detail

/// OpenSSL reported a TLS failure (asyncio's ssl.SSLError; here a
/// weft::Error, not an OSError). what() is "<where>: <reason>".
class SSLError : public Error {
 public:
  SSLError(const std::string& where, std::string reason, unsigned long code = 0)
      : Error(where + ": " + reason), reason_(std::move(reason)), code_(code) {}
  /// OpenSSL's reason string ("wrong version number", "tlsv1 alert unknown ca").
  const std::string& reason() const noexcept { return reason_; }
  /// OpenSSL's packed error code (ERR_get_error), 0 when there was none.
  unsigned long code() const noexcept { return code_; }

 private:
  std::string reason_;
  unsigned long code_;
};

/// The peer's certificate did not verify (ssl.SSLCertVerificationError).
class SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(const std::string& where, long verify_code, std::string verify_message)
      : SSLError(where, "certificate verify failed: " + verify_message + " (X509 verify code " +
                            std::to_string(verify_code) + ")"),
        verify_code_(verify_code),
        verify_message_(std::move(verify_message)) {}
  /// X509_V_ERR_*: 10 expired, 18/19/20 untrusted issuer, 62 hostname mismatch.
  long verify_code() const noexcept { return verify_code_; }
  /// OpenSSL's text for verify_code ("certificate has expired").
  const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  long verify_code_;
  std::string verify_message_;
};

enum class TlsVersion { tls1_2, tls1_3 };

/// ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED.
enum class VerifyMode { none, optional, required };

/// A TLS configuration shared by connections (asyncio's ssl.SSLContext).
/// Every loader throws SSLError naming the file and OpenSSL's reason.
class SslContext {
 public:
  /// ssl.create_default_context(): verify_mode = required, check_hostname,
  /// the system's CA store, TLS 1.2 minimum (1.3 preferred), client session
  /// resumption (sessions are kept per server name and address).
  static SslContext client();
  /// A server context: no client certificate asked for, TLS 1.2 minimum.
  /// Load a certificate chain before serving.
  static SslContext server();

  /// Trusted CA certificates from a PEM file. @throws SSLError.
  void load_verify_file(const std::string& cafile);
  /// Trusted CA certificates from PEM text (cadata). @throws SSLError.
  void load_verify_pem(const std::string& pem);
  /// The system's CA store (client() does this). @throws SSLError.
  void load_default_certs();
  /// This side's certificate chain and private key from PEM files; the key
  /// may be in the certificate file (keyfile empty). An encrypted key is
  /// decrypted with `password` (asyncio's password=); without one it is an
  /// SSLError, never a prompt on the terminal. @throws SSLError (no key, an
  /// encrypted key without a password, a wrong password, a key that does
  /// not match), ValueError for a password over 1024 bytes.
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = {},
                       const std::optional<std::string>& password = std::nullopt);
  /// The same from PEM text. @throws SSLError, ValueError.
  void load_cert_chain_pem(const std::string& cert_pem, const std::string& key_pem,
                           const std::optional<std::string>& password = std::nullopt);
  /// ALPN protocols, most preferred first ("h2", "http/1.1"). A server picks
  /// the first of its list that the client offers. @throws ValueError for an
  /// empty name or one over 255 bytes.
  void set_alpn_protocols(const std::vector<std::string>& protocols);
  /// @throws ValueError for VerifyMode::none while check_hostname is on (as Python).
  void set_verify_mode(VerifyMode mode);
  VerifyMode verify_mode() const;
  /// Check the server's name against its certificate (clients only).
  void set_check_hostname(bool check);
  bool check_hostname() const;
  /// Default TLS 1.2. @throws SSLError if OpenSSL refuses.
  void set_minimum_version(TlsVersion version);
  /// OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites stay OpenSSL's).
  /// @throws SSLError if nothing in the list is usable.
  void set_ciphers(const std::string& ciphers);
  /// TLS 1.3 session tickets a server sends after each full handshake
  /// (Python's SSLContext.num_tickets; OpenSSL's default 2, 0 turns
  /// resumption off). @throws ValueError on a client context.
  void set_num_tickets(std::size_t count);
  std::size_t num_tickets() const;
  bool is_server() const;

 private:
  friend struct detail::HandleAccess;
  explicit SslContext(std::shared_ptr<detail::SslContextState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::SslContextState> state_;
};

/// What asyncio's get_extra_info gives for a TLS connection
/// (StreamWriter::tls_info()).
struct TlsInfo {
  std::string version;        // "TLSv1.3"
  std::string cipher;         // "TLS_AES_256_GCM_SHA384"
  int cipher_bits = 0;        // secret bits of the cipher
  std::string alpn_protocol;  // empty when none was agreed
  std::string server_hostname;
  bool session_reused = false;
  /// The peer's certificate (PEM); empty when it sent none.
  std::string peer_certificate_pem;
  /// The peer certificate's subject and issuer, one line each ("/CN=localhost").
  std::string peer_subject;
  std::string peer_issuer;
};

}  // namespace weft

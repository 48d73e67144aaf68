// TlsEngine: one connection's OpenSSL state on memory BIOs (internal).
//
// Protocol:
// - The engine belongs to one Transport (which owns it and outlives it) and
//   is published to it once, atomically (Transport::tls_); it is never
//   replaced.
// - Everything that touches ssl_ or the BIOs holds mu_. Ciphertext OpenSSL
//   produces is handed to Transport::raw_write with mu_ still held, so the
//   records reach the socket in the order OpenSSL made them even when several
//   threads write. Lock order: TlsEngine::mu_, then Transport::mu_; the
//   transport never calls into the engine holding its own lock.
// - Received ciphertext arrives on the transport's loop thread only
//   (on_data / on_eof / on_closed); plaintext is fed to the reader and the
//   handshake future completed after mu_ is released (futures are never
//   completed under a lock).
// - An error found on the loop thread is not acted on in place (the
//   transport's recv callback is still running): the reader gets it and the
//   close is queued to the loop.
#pragma once

#include <weft/event_loop.hpp>
#include <weft/future.hpp>
#include <weft/ssl.hpp>

#include <openssl/ssl.h>

#include <atomic>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

namespace weft::detail {

class Transport;

struct SslContextState {
  explicit SslContextState(bool server);
  ~SslContextState();
  SslContextState(const SslContextState&) = delete;
  SslContextState& operator=(const SslContextState&) = delete;

  /// A session to resume for `key` (server name and address), or null; the
  /// caller owns the reference returned.
  SSL_SESSION* take_session(const std::string& key);
  void store_session(const std::string& key, SSL_SESSION* session);  // takes the reference

  SSL_CTX* ctx;
  const bool server;
  bool check_hostname;
  std::string alpn_wire;  // server side: the protocols in ALPN wire format

  std::mutex sessions_mu;
  std::map<std::string, SSL_SESSION*> sessions;  // guarded by sessions_mu
};

class TlsEngine {
 public:
  TlsEngine(Transport& transport, std::shared_ptr<SslContextState> ctx, bool server_side,
            std::string server_hostname);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  /// Begins the handshake (a client sends its hello). Any thread.
  void start();
  /// Completes when the handshake has, fails with its error.
  Future<void> handshake() const { return handshake_; }

  // --- the transport's loop thread ---
  /// Ciphertext read from the socket; returns true when the reader asks the
  /// transport to stop reading.
  bool on_data(std::string_view data);
  /// The socket's EOF.
  void on_eof();
  /// The transport closed (teardown): a handshake still pending fails.
  void on_closed(std::exception_ptr error);

  // --- any thread ---
  /// Encrypts `pieces` in order (one lock: no other writer's records between them).
  void write(std::span<const std::string_view> pieces);
  /// Sends close_notify (once the handshake is done) before a half-close.
  void write_eof();
  /// Sends close_notify (once the handshake is done) before the close.
  void close_notify();
  TlsInfo info() const;
  /// "TLS with <peer>" for messages.
  std::string where(const char* what) const;

 private:
  /// Hands what OpenSSL wrote to the transport (mu_ held).
  void flush_locked();
  void write_locked(std::string_view data);
  std::exception_ptr error_locked(int ret, const char* what);
  /// Reports a handshake outcome once.
  void settle_handshake(std::exception_ptr error);
  /// Queues the transport's close to its loop (error paths on the loop thread).
  void close_later();

  Transport& transport_;
  std::shared_ptr<SslContextState> ctx_;
  const bool server_side_;
  const std::string server_hostname_;
  std::string session_key_;
  Future<void> handshake_;

  mutable std::mutex mu_;
  SSL* ssl_;                          // guarded by mu_
  BIO* rbio_;                         // guarded by mu_ (owned by ssl_; reads in_view_)
  std::string in_;                    // guarded by mu_: a partial record kept between reads
  std::string_view in_view_;          // guarded by mu_: ciphertext unread, set in on_data only
  BIO* wbio_;                         // guarded by mu_ (owned by ssl_; appends to out_)
  std::string out_;                   // guarded by mu_: ciphertext not yet given to the transport
  bool handshake_done_ = false;       // guarded by mu_
  bool failed_ = false;               // guarded by mu_
  bool notify_sent_ = false;          // guarded by mu_
  std::string pending_;               // guarded by mu_: written before the handshake finished
  std::atomic<bool> settled_{false};  // handshake_ completed (no lock: teardown may run under mu_)

  bool plain_eof_ = false;  // loop-only: EOF fed to the reader
};

/// Builds a weft error from OpenSSL's error queue (clears it).
std::exception_ptr ssl_error(const std::string& where, const char* fallback);

}  // namespace weft::detail

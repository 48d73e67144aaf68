// SslContext and TlsEngine. The engine's protocol is described in
// tls_engine.hpp.
#include <weft/errors.hpp>
#include <weft/ssl.hpp>
#include <weft/wait_for.hpp>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <system_error>

#include "socket_util.hpp"
#include "tls_engine.hpp"
#include "transport.hpp"

namespace weft {
namespace detail {

namespace {

// Plaintext handed to SSL_write at a time: bounds the ciphertext one call
// leaves in the memory BIO (and so the copy made before the socket takes it).
constexpr std::size_t kWriteChunk = 256 * 1024;

// The read BIO: OpenSSL reads ciphertext from the engine's `in_view_` (a
// string_view: the received bytes themselves, or the partial record kept
// from before with them appended), so a complete record is read where it
// was received. A memory BIO would copy every byte in first, after
// zero-filling the room for it. Empty: "retry", as a memory BIO whose EOF
// return is -1 (EOF is the socket's to report).
int in_bio_read(BIO* bio, char* out, std::size_t n, std::size_t* read) {
  auto* view = static_cast<std::string_view*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (view->empty()) {
    BIO_set_retry_read(bio);
    *read = 0;
    return 0;
  }
  const std::size_t take = std::min(n, view->size());
  std::memcpy(out, view->data(), take);
  view->remove_prefix(take);
  *read = take;
  return 1;
}

long in_bio_ctrl(BIO* bio, int cmd, long, void*) {
  if (cmd == BIO_CTRL_PENDING)
    return static_cast<long>(static_cast<std::string_view*>(BIO_get_data(bio))->size());
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

// The write BIO: OpenSSL's records are appended to the engine's `out_`
// string (its data pointer), which flush_locked hands to the transport and
// clears, keeping its capacity. A memory BIO would do the same, except that
// emptying one (BIO_reset) zero-fills all the capacity it ever grew to, on
// every flush.
int out_bio_write(BIO* bio, const char* data, std::size_t n, std::size_t* written) {
  static_cast<std::string*>(BIO_get_data(bio))->append(data, n);
  *written = n;
  return 1;
}

long out_bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is held back: flushed
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* in_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft TLS input");
    if (!m || !BIO_meth_set_read_ex(m, in_bio_read) || !BIO_meth_set_ctrl(m, in_bio_ctrl) ||
        !BIO_meth_set_create(m, bio_create))
      throw std::bad_alloc();
    return m;
  }();
  return method;
}

const BIO_METHOD* out_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft TLS output");
    if (!m || !BIO_meth_set_write_ex(m, out_bio_write) || !BIO_meth_set_ctrl(m, out_bio_ctrl) ||
        !BIO_meth_set_create(m, bio_create))
      throw std::bad_alloc();
    return m;
  }();
  return method;
}

// The ex_data slot where an SSL points at its engine (for the session callback).
int engine_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string openssl_reason(unsigned long code) {
  if (code == 0) return {};
  const char* reason = ERR_reason_error_string(code);
  if (reason) return reason;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

// BIO over read-only memory.
struct MemBio {
  explicit MemBio(const std::string& s)
      : bio(BIO_new_mem_buf(s.data(), static_cast<int>(s.size()))) {
    if (!bio) throw std::bad_alloc();
  }
  ~MemBio() { BIO_free(bio); }
  MemBio(const MemBio&) = delete;
  MemBio& operator=(const MemBio&) = delete;
  BIO* bio;
};

[[noreturn]] void throw_ssl(const std::string& where, const char* fallback) {
  std::rethrow_exception(ssl_error(where, fallback));
}

// Python's limit for load_cert_chain's password (OpenSSL's PEM_BUFSIZE).
void check_password(const char* where, const std::optional<std::string>& password) {
  if (password && password->size() > PEM_BUFSIZE)
    throw ValueError(std::string(where) + ": the password is longer than " +
                     std::to_string(PEM_BUFSIZE) + " bytes");
}

struct PasswordArg {
  const std::optional<std::string>* password;
  bool asked = false;  // the key is encrypted
};

// Gives OpenSSL the password, or none. Never OpenSSL's default callback:
// that one prompts on the terminal, which would block a worker (and a
// service has no terminal to answer on).
int password_callback(char* buf, int size, int /*rwflag*/, void* user) {
  auto* arg = static_cast<PasswordArg*>(user);
  arg->asked = true;
  if (!*arg->password) return -1;
  const std::string& pw = **arg->password;
  if (pw.size() > static_cast<std::size_t>(size)) return -1;
  std::memcpy(buf, pw.data(), pw.size());
  return static_cast<int>(pw.size());
}

// The first private key in `bio`, decrypted with `password` where it is
// encrypted. @throws SSLError naming `where`: no key, an encrypted key and
// no password, or a wrong one (OpenSSL's reason, "bad decrypt").
EVP_PKEY* read_private_key(BIO* bio, const std::optional<std::string>& password,
                           const std::string& where) {
  PasswordArg arg{&password};
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, password_callback, &arg);
  if (pkey) return pkey;
  if (arg.asked && !password) {
    ERR_clear_error();
    throw SSLError(where, "the private key is encrypted and no password was given");
  }
  throw_ssl(where, arg.asked ? "cannot decrypt the private key" : "no private key in the PEM data");
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// A client keeps the session tickets its servers send, per engine key.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* engine = static_cast<TlsEngine*>(SSL_get_ex_data(ssl, engine_index()));
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  auto* state = static_cast<SslContextState*>(SSL_CTX_get_app_data(ctx));
  if (!engine || !state) return 0;
  const std::string* key = static_cast<const std::string*>(SSL_get_app_data(ssl));
  if (!key || key->empty()) return 0;
  state->store_session(*key, session);
  return 1;  // we took the reference
}

// Server-side ALPN: the first of our protocols the client offers.
int on_alpn_select(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                   unsigned int inlen, void* arg) {
  auto* state = static_cast<SslContextState*>(arg);
  const auto* ours = reinterpret_cast<const unsigned char*>(state->alpn_wire.data());
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, static_cast<unsigned>(state->alpn_wire.size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // no overlap: go on without ALPN (as Python)
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::exception_ptr ssl_error(const std::string& where, const char* fallback) {
  unsigned long code = ERR_peek_last_error();
  std::string reason = openssl_reason(code);
  ERR_clear_error();
  if (reason.empty()) reason = fallback;
  return std::make_exception_ptr(SSLError(where, reason, code));
}

// ------------------------------------------------------------ SslContextState

SslContextState::SslContextState(bool is_server)
    : ctx(SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method())),
      server(is_server),
      check_hostname(!is_server) {
  if (!ctx) throw_ssl("SSL_CTX_new", "cannot create a TLS context");
  SSL_CTX_set_app_data(ctx, this);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Partial writes are never wanted (the BIO is memory: SSL_write takes it
  // all); the buffer may move between retries (it is the caller's string).
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (is_server) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  }
}

SslContextState::~SslContextState() {
  for (auto& [key, session] : sessions) SSL_SESSION_free(session);
  SSL_CTX_free(ctx);
}

SSL_SESSION* SslContextState::take_session(const std::string& key) {
  std::lock_guard lock(sessions_mu);
  auto it = sessions.find(key);
  if (it == sessions.end()) return nullptr;
  SSL_SESSION* s = it->second;
  if (!SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(s);
    sessions.erase(it);
    return nullptr;
  }
  SSL_SESSION_up_ref(s);
  return s;
}

void SslContextState::store_session(const std::string& key, SSL_SESSION* session) {
  std::lock_guard lock(sessions_mu);
  auto [it, inserted] = sessions.try_emplace(key, session);
  if (!inserted) {
    SSL_SESSION_free(it->second);
    it->second = session;
  }
}

// ------------------------------------------------------------------ TlsEngine

TlsEngine::TlsEngine(Transport& transport, std::shared_ptr<SslContextState> ctx, bool server_side,
                     std::string server_hostname)
    : transport_(transport),
      ctx_(std::move(ctx)),
      server_side_(server_side),
      server_hostname_(std::move(server_hostname)),
      handshake_(transport.loop().create_future<void>()) {
  ssl_ = SSL_new(ctx_->ctx);
  if (!ssl_) throw_ssl(where("SSL_new"), "cannot create a TLS connection");
  rbio_ = BIO_new(in_bio_method());
  wbio_ = BIO_new(out_bio_method());
  if (!rbio_ || !wbio_) {
    BIO_free(rbio_);
    BIO_free(wbio_);
    SSL_free(ssl_);
    throw std::bad_alloc();
  }
  BIO_set_data(rbio_, &in_view_);
  BIO_set_data(wbio_, &out_);
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_ex_data(ssl_, engine_index(), this);
  try {
    if (server_side_) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
      const bool ip = is_ip_literal(server_hostname_);
      // SNI carries names only (RFC 6066), never an address.
      if (!server_hostname_.empty() && !ip &&
          !SSL_set_tlsext_host_name(ssl_, server_hostname_.c_str()))
        throw_ssl(where("SNI"), "cannot set the server name");
      if (ctx_->check_hostname) {
        if (server_hostname_.empty())
          throw ValueError("TLS: check_hostname requires server_hostname");
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_hostname_.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, server_hostname_.c_str(), 0);
        if (!ok) throw_ssl(where("hostname check"), "cannot set the expected host name");
      }
      // Sessions are resumed only with the same name at the same address.
      session_key_ = server_hostname_ + "|" +
                     (transport.peername() ? transport.peername()->to_string() : std::string());
      SSL_set_app_data(ssl_, &session_key_);
      if (SSL_SESSION* s = ctx_->take_session(session_key_)) {
        SSL_set_session(ssl_, s);
        SSL_SESSION_free(s);
      }
    }
  } catch (...) {
    SSL_free(ssl_);
    throw;
  }
}

TlsEngine::~TlsEngine() { SSL_free(ssl_); }

std::string TlsEngine::where(const char* what) const {
  auto peer = transport_.peername();
  std::string s = std::string(what) + (peer ? " with " + peer->to_string() : std::string());
  return s;
}

void TlsEngine::flush_locked() {
  if (out_.empty()) return;
  transport_.raw_write(std::move(out_));  // the transport queues the string itself
  out_.clear();                           // moved-from: valid, and empty from here on
}

std::exception_ptr TlsEngine::error_locked(int ret, const char* what) {
  int err = SSL_get_error(ssl_, ret);
  const std::string at = where(what);
  if (err == SSL_ERROR_SSL) {
    long verify = SSL_get_verify_result(ssl_);
    unsigned long code = ERR_peek_last_error();
    if (verify != X509_V_OK && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      ERR_clear_error();
      return std::make_exception_ptr(
          SSLCertVerificationError(at, verify, X509_verify_cert_error_string(verify)));
    }
    return ssl_error(at, "protocol error");
  }
  if (err == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    return std::make_exception_ptr(SSLError(at, "unexpected eof while reading"));
  }
  ERR_clear_error();
  return std::make_exception_ptr(SSLError(at, "SSL_get_error " + std::to_string(err)));
}

void TlsEngine::start() {
  std::lock_guard lock(mu_);
  if (server_side_) return;  // the server waits for the client's hello
  int r = SSL_do_handshake(ssl_);
  if (r != 1) {
    int err = SSL_get_error(ssl_, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      failed_ = true;
      std::exception_ptr e = error_locked(r, "TLS handshake");
      flush_locked();
      std::rethrow_exception(e);
    }
  }
  flush_locked();
}

bool TlsEngine::on_data(std::string_view data) {
  std::string plain;
  std::exception_ptr error;
  bool eof = false, completed = false, during_handshake = false;
  {
    std::lock_guard lock(mu_);
    if (failed_) return false;  // bytes after a fatal error are dropped
    // in_view_ is set only here, under mu_, and is the partial record kept
    // in in_ (if any) followed by `data`; whatever OpenSSL leaves unread
    // (the start of a record) is kept in in_ before returning.
    const bool held = !in_.empty();  // in_view_ points into in_
    if (held) {
      in_.append(data);
      in_view_ = in_;
    } else {
      in_view_ = data;
    }
    if (!handshake_done_) {
      int r = SSL_do_handshake(ssl_);
      if (r == 1) {
        handshake_done_ = completed = true;
      } else {
        int err = SSL_get_error(ssl_, r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          error = error_locked(r, "TLS handshake");
          during_handshake = true;
        }
      }
    }
    if (handshake_done_ && !error) {
      // Everything the records hold now: plaintext stays nowhere but the reader.
      // A failed peek or read: what it ends with (nothing, for "wait for more").
      auto failed = [&](int r) {
        int err = SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
        if (err == SSL_ERROR_ZERO_RETURN)
          eof = true;  // close_notify
        else
          error = error_locked(r, "TLS");
      };
      for (;;) {
        // The buffer is sized (and zero-filled) to the plaintext OpenSSL
        // has decrypted, never guessed from the ciphertext: a record split
        // over two receives (16 KiB of plaintext is 16406 bytes on the
        // wire, past one 16 KiB ring buffer) would zero-fill room for the
        // first part and then decrypt nothing into it. Nothing decrypted
        // yet: a peek of one byte decrypts the next complete record, if
        // there is one, and its size is then pending. Nothing buffered at
        // all: done without asking (even a record with no data, a ticket or
        // an alert, is ciphertext first).
        std::size_t avail = SSL_pending(ssl_);
        if (avail == 0) {
          if (in_view_.empty() && SSL_has_pending(ssl_) == 0) break;
          char probe;
          std::size_t peeked = 0;
          int r = SSL_peek_ex(ssl_, &probe, 1, &peeked);
          if (r != 1) {
            failed(r);
            break;
          }
          avail = std::max<std::size_t>(SSL_pending(ssl_), 1);
        }
        const std::size_t at = plain.size();
        plain.resize(at + avail);
        std::size_t got = 0;
        int r = SSL_read_ex(ssl_, plain.data() + at, avail, &got);
        plain.resize(at + got);
        if (r == 1) continue;
        failed(r);
        break;
      }
    }
    if (error) {
      failed_ = true;
      in_.clear();
    } else if (in_view_.empty()) {
      in_.clear();
    } else if (held) {
      in_.erase(0, in_.size() - in_view_.size());
    } else {
      in_.assign(in_view_);
    }
    in_view_ = {};
    flush_locked();  // handshake messages, tickets, key updates, alerts
    if (completed && !pending_.empty() && !error) {
      std::string pending = std::move(pending_);
      pending_.clear();
      write_locked(pending);
    }
  }
  bool pause = false;
  if (!plain.empty() && !plain_eof_) pause = transport_.reader()->feed_data(std::move(plain));
  if (eof && !plain_eof_) {
    plain_eof_ = true;
    transport_.reader()->feed_eof();
  }
  if (completed) settle_handshake(nullptr);
  if (error) {
    if (during_handshake) {
      settle_handshake(error);
    } else {
      transport_.reader()->set_exception(error);
    }
    close_later();  // the alert OpenSSL queued is flushed first
  }
  return pause;
}

void TlsEngine::on_eof() {
  bool pending_handshake;
  {
    std::lock_guard lock(mu_);
    pending_handshake = !handshake_done_ && !failed_;
    if (pending_handshake) failed_ = true;
  }
  if (pending_handshake) {
    // asyncio: ConnectionResetError for a peer that leaves mid-handshake.
    settle_handshake(std::make_exception_ptr(
        std::system_error(ECONNRESET, std::generic_category(),
                          where("TLS handshake") + ": the peer closed the connection")));
    close_later();
    return;
  }
  // An EOF without close_notify ends the stream as one with it (asyncio
  // feeds EOF to the protocol either way; truncation attacks are the
  // application protocol's to detect, as HTTP's Content-Length does).
  if (!plain_eof_) {
    plain_eof_ = true;
    transport_.reader()->feed_eof();
  }
}

void TlsEngine::on_closed(std::exception_ptr error) {
  if (!error)
    error = std::make_exception_ptr(
        std::system_error(ECONNRESET, std::generic_category(),
                          where("TLS handshake") + ": the connection was closed"));
  settle_handshake(error);
}

void TlsEngine::settle_handshake(std::exception_ptr error) {
  // ordering: relaxed: the exchange only elects one settler; the future
  // itself publishes the outcome.
  if (settled_.exchange(true, std::memory_order_relaxed)) return;
  // No-ops if the waiter cancelled the future (a handshake timeout).
  if (error) {
    // Marked retrieved: nobody may be left to await it.
    if (detail::FutureAccess::state(handshake_)->set_exception_ptr(error))
      (void)detail::FutureAccess::state(handshake_)->exception();
  } else {
    detail::FutureAccess::state(handshake_)->set_value();
  }
}

void TlsEngine::close_later() {
  EventLoop& loop = transport_.loop();
  try {
    loop.call_soon([t = transport_.shared_from_this()] { t->close(); });
  } catch (...) {
    // The loop is closed: its connections go with it.
  }
}

void TlsEngine::write_locked(std::string_view data) {
  while (!data.empty()) {
    std::size_t n = std::min(data.size(), kWriteChunk);
    std::size_t written = 0;
    int r = SSL_write_ex(ssl_, data.data(), n, &written);
    if (r != 1) {
      failed_ = true;
      std::exception_ptr e = error_locked(r, "TLS write");
      flush_locked();
      transport_.abort(e);
      return;
    }
    data.remove_prefix(written);
    flush_locked();
  }
}

void TlsEngine::write(std::span<const std::string_view> pieces) {
  std::lock_guard lock(mu_);
  if (notify_sent_ && !transport_.is_closing())
    throw RuntimeError("Cannot call write() after write_eof()");
  if (failed_ || notify_sent_) return;  // as a plain closed writer: ignored
  for (std::string_view data : pieces) {
    if (data.empty()) continue;
    if (!handshake_done_)
      pending_.append(data);
    else
      write_locked(data);
  }
}

void TlsEngine::write_eof() {
  std::lock_guard lock(mu_);
  if (notify_sent_) return;
  notify_sent_ = true;
  if (!handshake_done_ || failed_) return;
  (void)SSL_shutdown(ssl_);  // sends close_notify; reading goes on
  ERR_clear_error();
  flush_locked();
}

void TlsEngine::close_notify() { write_eof(); }

TlsInfo TlsEngine::info() const {
  std::lock_guard lock(mu_);
  TlsInfo info;
  info.server_hostname = server_hostname_;
  if (!handshake_done_) return info;
  info.version = SSL_get_version(ssl_);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) {
    info.cipher = SSL_CIPHER_get_name(c);
    info.cipher_bits = SSL_CIPHER_get_bits(c, nullptr);
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  if (alpn) info.alpn_protocol.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  info.session_reused = SSL_session_reused(ssl_) == 1;
  if (X509* cert = SSL_get0_peer_certificate(ssl_)) {
    BIO* mem = BIO_new(BIO_s_mem());
    if (mem && PEM_write_bio_X509(mem, cert)) {
      char* data = nullptr;
      long n = BIO_get_mem_data(mem, &data);
      info.peer_certificate_pem.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(mem);
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
    info.peer_subject = buf;
    X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof buf);
    info.peer_issuer = buf;
  }
  ERR_clear_error();
  return info;
}

Coro<void> tls_handshake(std::shared_ptr<Transport> t, std::shared_ptr<SslContextState> ctx,
                         bool server_side, std::string server_hostname, Duration handshake_timeout,
                         Duration shutdown_timeout) {
  // The engine is attached on the transport's loop (Transport::attach_tls).
  Future<TlsEngine*> attached;
  bool queued = run_on_loop(t->loop(), [t, attached, ctx = std::move(ctx), server_side,
                                        name = std::move(server_hostname), shutdown_timeout] {
    try {
      detail::FutureAccess::state(attached)->set_value(
          &t->attach_tls(ctx, server_side, name, shutdown_timeout));
    } catch (...) {
      detail::FutureAccess::state(attached)->set_exception_ptr(std::current_exception());
    }
  });
  if (!queued) throw RuntimeError("TLS: the connection's event loop is closed");
  TlsEngine* engine = nullptr;
  std::exception_ptr attach_error;
  try {
    engine = co_await attached;
  } catch (...) {
    attach_error = std::current_exception();
  }
  if (attach_error) {
    t->close();
    std::rethrow_exception(attach_error);
  }
  Future<void> done = engine->handshake();
  bool timed_out = false;
  std::exception_ptr error;
  try {
    co_await wait_for(done, handshake_timeout);
  } catch (const TimeoutError&) {
    timed_out = true;
  } catch (...) {
    error = std::current_exception();  // the handshake's error, or a cancellation
  }
  if (timed_out) {
    auto seconds = std::chrono::duration<double>(handshake_timeout).count();
    std::ostringstream msg;
    msg << engine->where("TLS handshake") << " is taking longer than " << seconds
        << " seconds: aborting the connection";
    error = std::make_exception_ptr(
        std::system_error(ECONNABORTED, std::generic_category(), msg.str()));
    t->abort(error);
    std::rethrow_exception(error);
  }
  if (error) {
    if (is_cancelled_error(error))
      t->abort(std::make_exception_ptr(std::system_error(
          ECONNABORTED, std::generic_category(), engine->where("TLS handshake") + ": cancelled")));
    else
      t->close();  // the alert OpenSSL queued goes out first
    std::rethrow_exception(error);
  }
}

}  // namespace detail

// ------------------------------------------------------------------ SslContext

SslContext SslContext::client() {
  SslContext c(std::make_shared<detail::SslContextState>(false));
  c.load_default_certs();
  return c;
}

SslContext SslContext::server() {
  return SslContext(std::make_shared<detail::SslContextState>(true));
}

void SslContext::load_verify_file(const std::string& cafile) {
  if (SSL_CTX_load_verify_locations(state_->ctx, cafile.c_str(), nullptr) != 1)
    detail::throw_ssl("load_verify_file " + cafile, "cannot load the CA file");
}

void SslContext::load_verify_pem(const std::string& pem) {
  detail::MemBio bio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(state_->ctx);
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio.bio, nullptr, nullptr, nullptr)) {
    int ok = X509_STORE_add_cert(store, cert);
    X509_free(cert);
    if (!ok) detail::throw_ssl("load_verify_pem", "cannot add a CA certificate");
    ++added;
  }
  ERR_clear_error();  // the loop ends with a "no start line" error
  if (added == 0) throw SSLError("load_verify_pem", "no certificate found in the PEM data");
}

void SslContext::load_default_certs() {
  if (SSL_CTX_set_default_verify_paths(state_->ctx) != 1)
    detail::throw_ssl("load_default_certs", "cannot load the system CA store");
}

void SslContext::load_cert_chain(const std::string& certfile, const std::string& keyfile,
                                 const std::optional<std::string>& password) {
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  detail::check_password("load_cert_chain", password);
  if (SSL_CTX_use_certificate_chain_file(state_->ctx, certfile.c_str()) != 1)
    detail::throw_ssl("load_cert_chain " + certfile, "cannot load the certificate");
  BIO* bio = BIO_new_file(key.c_str(), "r");
  if (!bio) detail::throw_ssl("load_cert_chain " + key, "cannot open the private key file");
  EVP_PKEY* pkey = nullptr;
  try {
    pkey = detail::read_private_key(bio, password, "load_cert_chain " + key);
  } catch (...) {
    BIO_free(bio);
    throw;
  }
  BIO_free(bio);
  int ok = SSL_CTX_use_PrivateKey(state_->ctx, pkey);
  EVP_PKEY_free(pkey);
  if (ok != 1) detail::throw_ssl("load_cert_chain " + key, "cannot use the private key");
  if (SSL_CTX_check_private_key(state_->ctx) != 1)
    detail::throw_ssl("load_cert_chain " + key, "the key does not match the certificate");
}

void SslContext::load_cert_chain_pem(const std::string& cert_pem, const std::string& key_pem,
                                     const std::optional<std::string>& password) {
  detail::check_password("load_cert_chain_pem", password);
  detail::MemBio certs(cert_pem);
  X509* leaf = PEM_read_bio_X509(certs.bio, nullptr, nullptr, nullptr);
  if (!leaf) detail::throw_ssl("load_cert_chain_pem", "no certificate in the PEM data");
  int ok = SSL_CTX_use_certificate(state_->ctx, leaf);
  X509_free(leaf);
  if (ok != 1) detail::throw_ssl("load_cert_chain_pem", "cannot use the certificate");
  SSL_CTX_clear_chain_certs(state_->ctx);
  while (X509* extra = PEM_read_bio_X509(certs.bio, nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(state_->ctx, extra) != 1) {
      X509_free(extra);
      detail::throw_ssl("load_cert_chain_pem", "cannot add a chain certificate");
    }
  }
  ERR_clear_error();
  detail::MemBio keys(key_pem);
  EVP_PKEY* pkey = detail::read_private_key(keys.bio, password, "load_cert_chain_pem");
  ok = SSL_CTX_use_PrivateKey(state_->ctx, pkey);
  EVP_PKEY_free(pkey);
  if (ok != 1) detail::throw_ssl("load_cert_chain_pem", "cannot use the private key");
  if (SSL_CTX_check_private_key(state_->ctx) != 1)
    detail::throw_ssl("load_cert_chain_pem", "the key does not match the certificate");
}

void SslContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255)
      throw ValueError("set_alpn_protocols: a protocol name must be 1 to 255 bytes");
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  if (state_->server) {
    state_->alpn_wire = wire;
    SSL_CTX_set_alpn_select_cb(state_->ctx, detail::on_alpn_select, state_.get());
  } else if (SSL_CTX_set_alpn_protos(state_->ctx,
                                     reinterpret_cast<const unsigned char*>(wire.data()),
                                     static_cast<unsigned>(wire.size())) != 0) {
    detail::throw_ssl("set_alpn_protocols", "cannot set the ALPN protocols");
  }
}

void SslContext::set_verify_mode(VerifyMode mode) {
  if (mode == VerifyMode::none && state_->check_hostname)
    throw ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.");
  int flags = mode == VerifyMode::none       ? SSL_VERIFY_NONE
              : mode == VerifyMode::optional ? SSL_VERIFY_PEER
                                             : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(state_->ctx, flags, nullptr);
}

VerifyMode SslContext::verify_mode() const {
  int flags = SSL_CTX_get_verify_mode(state_->ctx);
  if (!(flags & SSL_VERIFY_PEER)) return VerifyMode::none;
  // A client verifies the server whenever SSL_VERIFY_PEER is set.
  if (!state_->server || (flags & SSL_VERIFY_FAIL_IF_NO_PEER_CERT)) return VerifyMode::required;
  return VerifyMode::optional;
}

void SslContext::set_check_hostname(bool check) {
  // As Python: turning it on also turns verification on.
  if (check && verify_mode() == VerifyMode::none) set_verify_mode(VerifyMode::required);
  state_->check_hostname = check;
}

bool SslContext::check_hostname() const { return state_->check_hostname; }

void SslContext::set_minimum_version(TlsVersion version) {
  if (SSL_CTX_set_min_proto_version(
          state_->ctx, version == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1)
    detail::throw_ssl("set_minimum_version", "cannot set the minimum version");
}

void SslContext::set_ciphers(const std::string& ciphers) {
  if (SSL_CTX_set_cipher_list(state_->ctx, ciphers.c_str()) != 1)
    detail::throw_ssl("set_ciphers " + ciphers, "no cipher can be selected");
}

void SslContext::set_num_tickets(std::size_t count) {
  if (!state_->server) throw ValueError("set_num_tickets: SslContext is not a server context");
  if (SSL_CTX_set_num_tickets(state_->ctx, count) != 1)
    detail::throw_ssl("set_num_tickets", "OpenSSL refused the ticket count");
}

std::size_t SslContext::num_tickets() const { return SSL_CTX_get_num_tickets(state_->ctx); }

bool SslContext::is_server() const { return state_->server; }

}  // namespace weft

// Chaos soak (issue 17, item 2; docs/testing.md, "Chaos soak"): a line echo
// server and http_hello's connection handler (examples/http_serve.hpp), at
// 1, 2 and 8 workers, under a load generator of plain sockets and threads
// (independent of weft) that mixes well-behaved clients with hostile ones:
// resets (SO_LINGER 0), half-closes, slowloris senders (a byte a second),
// lines and heads over the reader limit, clients that never read (the
// server's write buffer fills), connect-and-vanish, and idle connections
// (10,000 by default, held by a forked child process so that each process
// needs only about 10,000 descriptors).
//
// Asserts: every well-behaved request (and every half-closed, slowloris and
// idle probe request that completes) is answered intact; an over-limit
// request is answered or its connection closed, never left hanging; the
// server's handlers meet only the errors they expect; RSS after warm-up
// stays within kRssMargin of the warm-up figure (uninstrumented builds);
// the open descriptors and all_tasks() are back to their baseline once the
// clients leave; every worker's watchdog task (pinned, a 10 ms sleep loop)
// never goes longer than kWatchdogBound without a tick.
//
// Length: WEFT_SOAK_SECONDS of load per case (default 6, 2 under a
// sanitizer: about 60 s for the six cases in CI), WEFT_SOAK_IDLE idle
// connections (default 10000, 500 under a sanitizer). The full run:
//   WEFT_SOAK_SECONDS=300 build/default/tests/chaos_soak_test   (30 minutes)
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "http_serve.hpp"
#include "weft_test.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

enum class Kind { echo, http };

#ifdef WEFT_SANITIZED
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

long env_or(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atol(v) : fallback;
}

/// The RSS bound after warm-up: the warm-up figure plus 10% plus 16 MiB
/// (allocator arenas of the client threads and the workers settle slowly).
std::size_t rss_bound(std::size_t warm) { return warm + warm / 10 + (16u << 20); }
/// A worker whose watchdog has not ticked for this long is stuck (the
/// period is 10 ms; on a loaded 2-core VM with 8 workers and the load
/// generator's threads a tick can be late by a few hundred ms).
constexpr auto kWatchdogPeriod = 10ms;
constexpr auto kWatchdogBound = kSanitized ? 5s : 2s;
/// How long a well-behaved client waits for a reply before calling it lost.
constexpr int kReplyTimeoutMs = 20000;

/// Bytes malloc has handed out and not had back, over every arena (0 under
/// a sanitizer, whose allocator mallinfo2 does not see).
std::size_t heap_in_use() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

std::size_t rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

/// The open descriptors and what each refers to ("socket:[...]", ...),
/// except io_uring instances: a loop creates its ring on its first stream
/// socket (Selector::io_ring) and keeps it for its life, so a worker's ring
/// may appear during the load; it is the runtime's, not a connection's.
std::multiset<std::string> open_fds() {
  std::multiset<std::string> fds;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (target == "anon_inode:[io_uring]") continue;
    fds.insert(e.path().filename().string() + " -> " + target);
  }
  return fds;
}

std::string describe(const std::multiset<std::string>& fds) {
  std::string out;
  for (const std::string& f : fds) out += "\n  " + f;
  return out;
}

// ---- what the server's handlers meet -------------------------------------

std::mutex g_unexpected_mu;
std::vector<std::string> g_unexpected;  // guarded: must stay empty
void unexpected(std::string what) {
  std::lock_guard lock(g_unexpected_mu);
  if (g_unexpected.size() < 20) g_unexpected.push_back(std::move(what));
}

/// Line echo: each line back as it came; a line over the reader's limit
/// gets an error line and a close. A reset or a failed write ends the
/// connection (std::system_error).
weft::Coro<void> echo_lines(weft::StreamReader reader, weft::StreamWriter writer) {
  try {
    for (;;) {
      std::string line = co_await reader.readline();
      if (line.empty()) break;
      writer.write(line);
      co_await writer.drain();
    }
  } catch (const weft::ValueError&) {
    writer.write("ERROR line over the limit\n");
  } catch (const std::system_error&) {
  } catch (const std::exception& e) {
    unexpected(std::string("echo handler: ") + e.what());
  }
  writer.close();
}

/// http_hello's handler; anything it lets through is unexpected.
weft::Coro<void> http_guarded(weft::StreamReader reader, weft::StreamWriter writer) {
  try {
    weft::Coro<void> serve = http_hello::serve_client(std::move(reader), std::move(writer));
    co_await std::move(serve);
  } catch (const std::exception& e) {
    unexpected(std::string("http handler: ") + e.what());
  }
}

// ---- the client side: plain blocking sockets with timeouts ----------------

struct Counters {
  std::atomic<long> connections{0}, good_requests{0}, good_failed{0};
  std::atomic<long> resets{0}, half_closes{0}, slowloris_requests{0}, over_limit{0},
      over_limit_hung{0}, never_read{0}, never_read_filled{0}, vanished{0};
  std::mutex mu;
  std::vector<std::string> failures;  // guarded by mu; the first few
  void fail(std::string what) {
    good_failed.fetch_add(1);
    std::lock_guard lock(mu);
    if (failures.size() < 10) failures.push_back(std::move(what));
  }
};

class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { close(); }

  /// Connects to 127.0.0.1:port with send and receive timeouts; a receive
  /// buffer of `rcvbuf` bytes when nonzero (set before connecting).
  bool open(std::uint16_t port, int timeout_ms, int rcvbuf = 0) {
    close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    set_timeouts(timeout_ms);
    if (rcvbuf) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close();
      return false;
    }
    return true;
  }
  void set_timeouts(int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  /// Bytes sent before an error or a send timeout.
  std::size_t send_some(std::string_view s) {
    std::size_t sent = 0;
    while (sent < s.size()) {
      ssize_t n = ::send(fd_, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;
      }
    }
    return sent;
  }
  bool send_all(std::string_view s) { return send_some(s) == s.size(); }
  /// Reads until `n` bytes are buffered; false at EOF, an error or a timeout.
  bool fill(std::size_t n) {
    char chunk[16384];
    while (buf_.size() < n) {
      ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got > 0) {
        buf_.append(chunk, static_cast<std::size_t>(got));
      } else if (got < 0 && errno == EINTR) {
        continue;
      } else {
        return false;
      }
    }
    return true;
  }
  bool read_n(std::size_t n, std::string& out) {
    if (!fill(n)) return false;
    out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }
  /// Everything up to EOF (true) or an error/timeout/`cap` bytes (false).
  bool read_to_eof(std::string& out, std::size_t cap) {
    char chunk[16384];
    for (;;) {
      if (buf_.size() > cap) break;
      ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got > 0) {
        buf_.append(chunk, static_cast<std::size_t>(got));
      } else if (got == 0) {
        out = std::move(buf_);
        buf_.clear();
        return true;
      } else if (errno != EINTR) {
        break;
      }
    }
    out = std::move(buf_);
    buf_.clear();
    return false;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  /// Closes with a reset (SO_LINGER 0) instead of a FIN.
  void reset() {
    if (fd_ < 0) return;
    linger lg{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close();
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }
  bool is_open() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string buf_;
};

/// One request and the exact reply a well-behaved server gives it.
struct Exchange {
  std::string request, reply;
};

Exchange echo_exchange(std::mt19937& rng, long id) {
  std::size_t len = rng() % 4000;
  std::string line = "good " + std::to_string(id) + " ";
  for (std::size_t i = 0; i < len; ++i) line += static_cast<char>('a' + rng() % 26);
  line += '\n';
  return {line, line};
}

Exchange http_exchange(std::mt19937& rng, bool close) {
  std::string connection = close ? "Connection: close\r\n" : "";
  std::string reply(close ? http_hello::kResponseClose : http_hello::kResponse);
  if (rng() % 3 == 0) {
    std::string body(rng() % 2000, 'b');
    return {"POST /soak HTTP/1.1\r\nHost: soak\r\n" + connection +
                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
            reply};
  }
  return {"GET / HTTP/1.1\r\nHost: soak\r\nUser-Agent: chaos-soak\r\n" + connection + "\r\n",
          reply};
}

struct Load {
  Kind kind;
  std::uint16_t port;
  std::atomic<bool> stop{false};
  Counters c;
};

/// A well-behaved client: a few requests per connection (some pipelined),
/// each reply checked byte for byte; sometimes ends with a half-close and
/// expects the server's EOF.
void good_client(Load* load, unsigned seed) {
  std::mt19937 rng(seed);
  long id = 0;
  while (!load->stop.load()) {
    Conn conn;
    if (!conn.open(load->port, kReplyTimeoutMs)) {
      load->c.fail("connect failed: " + std::string(std::strerror(errno)));
      continue;
    }
    load->c.connections.fetch_add(1);
    int requests = 1 + static_cast<int>(rng() % 20);
    bool close_last = load->kind == Kind::http && rng() % 4 == 0;
    bool ok = true, closing = false;
    for (int r = 0; ok && r < requests && !load->stop.load();) {
      int batch = std::min(requests - r, 1 + static_cast<int>(rng() % 4));
      std::vector<Exchange> xs;
      std::string out;
      for (int b = 0; b < batch; ++b, ++r) {
        closing = close_last && r + 1 == requests;
        xs.push_back(load->kind == Kind::echo ? echo_exchange(rng, ++id)
                                              : http_exchange(rng, closing));
        out += xs.back().request;
      }
      if (!conn.send_all(out)) {
        load->c.fail("send failed: " + std::string(std::strerror(errno)));
        ok = false;
        break;
      }
      for (const Exchange& x : xs) {
        std::string back;
        if (!conn.read_n(x.reply.size(), back)) {
          load->c.fail("no reply: " + std::string(std::strerror(errno)));
          ok = false;
          break;
        }
        if (back != x.reply) {
          load->c.fail("reply altered: '" + back.substr(0, 80) + "'");
          ok = false;
          break;
        }
        load->c.good_requests.fetch_add(1);
      }
    }
    if (ok && (closing || rng() % 2 == 0)) {
      // The server closes after Connection: close, or after our FIN.
      if (!closing) conn.shutdown_write();
      std::string rest;
      if (!conn.read_to_eof(rest, 1 << 20) || !rest.empty())
        load->c.fail("no clean EOF after the last request: '" + rest.substr(0, 80) + "'");
    }
  }
}

/// A request cut at a random point.
std::string partial_request(Kind kind, std::mt19937& rng) {
  std::string full =
      kind == Kind::echo ? "partial line of some length\n" : "GET / HTTP/1.1\r\nHost: soak\r\n\r\n";
  return full.substr(0, rng() % full.size());
}

void reset_client(Load* load, std::mt19937& rng) {
  Conn conn;
  if (!conn.open(load->port, 2000)) return;
  load->c.connections.fetch_add(1);
  conn.send_all(partial_request(load->kind, rng));
  if (rng() % 2) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
  conn.reset();
  load->c.resets.fetch_add(1);
}

/// A full request and half of another, then SHUT_WR: the first is answered
/// intact and the server closes.
void half_close_client(Load* load, std::mt19937& rng) {
  Conn conn;
  if (!conn.open(load->port, kReplyTimeoutMs)) return;
  load->c.connections.fetch_add(1);
  Exchange x = load->kind == Kind::echo ? echo_exchange(rng, -1) : http_exchange(rng, false);
  std::string partial = partial_request(load->kind, rng);
  if (!conn.send_all(x.request + partial)) return load->c.fail("half-close: send failed");
  conn.shutdown_write();
  std::string back;
  if (!conn.read_to_eof(back, 1 << 20))
    return load->c.fail("half-close: no EOF: " + std::string(std::strerror(errno)));
  if (back.rfind(x.reply, 0) != 0) return load->c.fail("half-close: reply altered");
  load->c.half_closes.fetch_add(1);
}

/// More than the reader's limit without a line end (echo) or an end of the
/// head (http): an error reply or a reset, and the server closes.
void over_limit_client(Load* load, std::mt19937& rng) {
  Conn conn;
  if (!conn.open(load->port, 5000)) return;
  load->c.connections.fetch_add(1);
  std::string big = load->kind == Kind::echo ? "" : "GET / HTTP/1.1\r\nX-Big: ";
  big.append(weft::kDefaultStreamLimit + 1 + rng() % 16384, 'o');
  conn.send_some(big);
  conn.set_timeouts(kReplyTimeoutMs);
  std::string back;
  bool eof = conn.read_to_eof(back, 1 << 20);
  // A reset (the server closed with our bytes unread) counts as closed.
  if (!eof && errno != ECONNRESET && errno != EPIPE) load->c.over_limit_hung.fetch_add(1);
  load->c.over_limit.fetch_add(1);
}

/// Sends requests and never reads: the client's small receive buffer and
/// then the server's write buffer fill, the server's drain waits, it stops
/// reading, and our send blocks. Then it closes (FIN or reset).
void never_read_client(Load* load, std::mt19937& rng) {
  Conn conn;
  if (!conn.open(load->port, 100, 4096)) return;
  load->c.connections.fetch_add(1);
  std::string chunk;
  while (chunk.size() < 32768)
    chunk += load->kind == Kind::echo ? std::string(999, 'n') + "\n"
                                      : "GET / HTTP/1.1\r\nHost: never-read\r\n\r\n";
  std::size_t sent = 0;
  bool filled = false;
  auto until = Clock::now() + 2s;
  while (!load->stop.load() && Clock::now() < until && sent < (16u << 20)) {
    std::size_t n = conn.send_some(chunk);
    sent += n;
    if (n < chunk.size()) {
      filled = errno == EAGAIN || errno == EWOULDBLOCK;
      break;
    }
  }
  if (filled) {
    load->c.never_read_filled.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
  }
  if (rng() % 2)
    conn.reset();
  else
    conn.close();
  load->c.never_read.fetch_add(1);
}

/// Connects and goes: at once, with a reset, or after part of a request.
void vanish_client(Load* load, std::mt19937& rng) {
  Conn conn;
  if (!conn.open(load->port, 2000)) return;
  load->c.connections.fetch_add(1);
  switch (rng() % 3) {
    case 0:
      conn.close();
      break;
    case 1:
      conn.reset();
      break;
    default:
      conn.send_all(partial_request(load->kind, rng));
      conn.close();
  }
  load->c.vanished.fetch_add(1);
}

/// The hostile kinds in play: WEFT_SOAK_HOSTILE, a comma-separated subset of
/// reset, half_close, over_limit, never_read, vanish ("" or unset: all;
/// "none": none), to find which one a figure comes from.
std::vector<unsigned> hostile_kinds() {
  static const char* const kNames[] = {"reset", "half_close", "over_limit", "never_read", "vanish"};
  const char* env = std::getenv("WEFT_SOAK_HOSTILE");
  std::vector<unsigned> kinds;
  for (unsigned k = 0; k < 5; ++k)
    if (!env || !*env || std::strstr(env, kNames[k])) kinds.push_back(k);
  return kinds;
}

void hostile_client(Load* load, unsigned seed) {
  std::mt19937 rng(seed);
  const std::vector<unsigned> kinds = hostile_kinds();
  if (kinds.empty()) return;
  while (!load->stop.load()) {
    switch (kinds[rng() % kinds.size()]) {
      case 0:
        reset_client(load, rng);
        break;
      case 1:
        half_close_client(load, rng);
        break;
      case 2:
        over_limit_client(load, rng);
        break;
      case 3:
        never_read_client(load, rng);
        break;
      default:
        vanish_client(load, rng);
    }
  }
}

/// Slowloris: `n` connections, each sending its request one byte a second;
/// a request that completes is answered intact; at the end each goes with a
/// FIN or a reset.
void slowloris(Load* load, unsigned seed, int n) {
  std::mt19937 rng(seed);
  const std::string request =
      load->kind == Kind::echo ? "slow\n" : "GET / HTTP/1.1\r\nHost: s\r\n\r\n";
  const std::string reply(load->kind == Kind::echo ? std::string_view("slow\n")
                                                   : http_hello::kResponse);
  struct Slow {
    Conn conn;
    std::size_t pos = 0;
  };
  std::vector<Slow> slow(static_cast<std::size_t>(n));
  while (!load->stop.load()) {
    for (Slow& s : slow) {
      if (!s.conn.is_open()) {
        if (!s.conn.open(load->port, kReplyTimeoutMs)) continue;
        load->c.connections.fetch_add(1);
        s.pos = 0;
      }
      if (!s.conn.send_all(std::string_view(request).substr(s.pos, 1))) {
        load->c.fail("slowloris: send failed: " + std::string(std::strerror(errno)));
        s.conn.close();
        continue;
      }
      if (++s.pos < request.size()) continue;
      std::string back;
      if (!s.conn.read_n(reply.size(), back) || back != reply)
        load->c.fail("slowloris: reply missing or altered");
      else
        load->c.slowloris_requests.fetch_add(1);
      s.pos = 0;
    }
    for (int i = 0; i < 10 && !load->stop.load(); ++i) std::this_thread::sleep_for(100ms);
  }
  for (Slow& s : slow) {
    if (rng() % 2)
      s.conn.reset();
    else
      s.conn.close();
  }
}

// ---- idle connections, held by a child process ----------------------------

/// A forked child (before the runtime's threads exist) that, given a port
/// over a socket pair, opens `n` connections, reports how many, holds them
/// until the parent shuts its end for writing, then sends a request on every
/// 100th and reports how many were answered intact, closes them all and
/// exits.
struct IdleChild {
  pid_t pid = -1;
  int sock = -1;  // the parent's end

  void fork_child(long count, const Exchange& probe) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return;
    std::vector<int> fds(static_cast<std::size_t>(count), -1);
    pid = ::fork();
    if (pid == 0) {
      ::close(pair[0]);
      const int ctl = pair[1];
      std::uint16_t port = 0;
      if (::read(ctl, &port, sizeof port) != sizeof port) _exit(1);
      long opened = 0;
      for (int& fd : fds) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) break;
        ++opened;
      }
      if (::write(ctl, &opened, sizeof opened) != sizeof opened) _exit(1);
      char byte;
      while (::read(ctl, &byte, 1) > 0) {
      }
      long answered = 0;
      timeval tv{20, 0};
      for (long i = 0; i < opened; i += 100) {
        int fd = fds[static_cast<std::size_t>(i)];
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (::send(fd, probe.request.data(), probe.request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(probe.request.size()))
          continue;
        std::string got;
        char chunk[4096];
        while (got.size() < probe.reply.size()) {
          ssize_t r = ::recv(fd, chunk, sizeof chunk, 0);
          if (r <= 0) break;
          got.append(chunk, static_cast<std::size_t>(r));
        }
        if (got == probe.reply) ++answered;
      }
      for (int fd : fds)
        if (fd >= 0) ::close(fd);
      if (::write(ctl, &answered, sizeof answered) != sizeof answered) _exit(1);
      _exit(0);
    }
    ::close(pair[1]);
    sock = pair[0];
  }
  /// Sends the port; returns how many connections the child opened.
  long open_all(std::uint16_t port) {
    long opened = -1;
    if (::write(sock, &port, sizeof port) != sizeof port) return -1;
    if (::read(sock, &opened, sizeof opened) != sizeof opened) return -1;
    return opened;
  }
  /// The probes, then every connection closed and the child gone; returns
  /// the probes answered. The socket pair stays open (counted in the
  /// baseline) until the destructor.
  long finish() {
    ::shutdown(sock, SHUT_WR);
    long answered = -1;
    if (::read(sock, &answered, sizeof answered) != sizeof answered) answered = -1;
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return answered;
  }
  ~IdleChild() {
    if (sock >= 0) ::close(sock);
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// ---- the runtime's side -------------------------------------------------

struct Watchdog {
  std::atomic<std::int64_t> last_tick_ns{0};
  std::atomic<long> ticks{0};
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

weft::Coro<void> watchdog(Watchdog* w, const std::atomic<bool>* stop) {
  while (!stop->load()) {
    co_await weft::sleep(kWatchdogPeriod);
    w->last_tick_ns.store(now_ns());
    w->ticks.fetch_add(1);
  }
}

weft::Coro<weft::Server> start(Kind kind) {
  weft::ClientHandler handler =
      kind == Kind::echo ? weft::ClientHandler(echo_lines) : weft::ClientHandler(http_guarded);
  weft::ServerOptions options;
  options.backlog = 4096;  // the idle connections arrive in a burst
  co_return co_await weft::start_server(handler, "127.0.0.1", 0, options);
}

weft::Coro<void> await_task(weft::Task<void> t) { co_await t; }

weft::Coro<std::size_t> count_tasks() { co_return weft::all_tasks().size(); }

weft::Coro<void> close_server(weft::Server server) {
  server.close();
  co_await server.wait_closed();
}

class ChaosSoak : public ::testing::TestWithParam<std::tuple<Kind, unsigned>> {};

TEST_P(ChaosSoak, HostileClientsNeitherStarveGoodOnesNorLeak) {
  const auto [kind, workers] = GetParam();
  const char* name = kind == Kind::echo ? "echo" : "http";
  const double seconds = static_cast<double>(env_or("WEFT_SOAK_SECONDS", kSanitized ? 2 : 6));
  long idle = env_or("WEFT_SOAK_IDLE", kSanitized ? 500 : 10000);
  weft::testing::start_sanitizer_helpers();

  // Each process holds one end of every idle connection, plus the load's.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  const rlim_t want = static_cast<rlim_t>(idle + 2048);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = std::min(want, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (idle > 0 && rl.rlim_cur < want) {
    std::printf(
        "soak: SKIPPING the %ld idle connections: RLIMIT_NOFILE's hard limit is %llu, they need "
        "%llu (raise it with ulimit -Hn, or set WEFT_SOAK_IDLE lower)\n",
        idle, static_cast<unsigned long long>(rl.rlim_max), static_cast<unsigned long long>(want));
    idle = 0;
  }
  std::mt19937 probe_rng(1);
  const Exchange probe =
      kind == Kind::echo ? Exchange{"idle\n", "idle\n"} : http_exchange(probe_rng, false);
  IdleChild child;
  if (idle > 0) {
    child.fork_child(idle, probe);
    ASSERT_GT(child.pid, 0) << "fork: " << std::strerror(errno);
  }

  std::atomic<long> stalls{0};
  std::atomic<std::int64_t> longest_stall_ns{0};
  weft::RunOptions options{.workers = workers};
  // Stall reports are counted, not printed: with 8 workers on 2 cores a
  // worker descheduled in mid-step looks stalled. The watchdogs below are
  // the check.
  options.on_stall = [&](const weft::StallReport& r) {
    stalls.fetch_add(1);
    std::int64_t ns = r.stalled_for.count();
    std::int64_t prev = longest_stall_ns.load();
    while (ns > prev && !longest_stall_ns.compare_exchange_weak(prev, ns)) {
    }
  };
  std::atomic<bool> stop_watchdogs{false};
  std::vector<Watchdog> dogs(workers);
  {
    weft::Runtime rt(options);
    weft::Server server = rt.block_on(start(kind));
    Load load;
    load.kind = kind;
    load.port = server.sockets().at(0).port();
    std::vector<weft::Task<void>> dog_tasks;
    for (unsigned w = 0; w < workers; ++w) {
      dogs[w].last_tick_ns.store(now_ns());
      weft::TaskOptions pinned;
      pinned.name = "watchdog-" + std::to_string(w);
      pinned.pinned = true;
      dog_tasks.push_back(
          weft::detail::spawn_on(&rt.loop(w), watchdog(&dogs[w], &stop_watchdogs), pinned));
    }
    const std::multiset<std::string> fds_before = open_fds();
    const std::size_t tasks_before = rt.block_on(count_tasks());

    long idle_open = 0;
    if (idle > 0) {
      idle_open = child.open_all(load.port);
      EXPECT_EQ(idle_open, idle) << "idle connections opened";
    }

    // The load; the main thread samples RSS and the watchdogs' gaps.
    const auto start_time = Clock::now();
    std::vector<std::thread> clients;
    const unsigned seed = static_cast<unsigned>(env_or("WEFT_SOAK_SEED", 17));
    for (unsigned i = 0; i < 4; ++i) clients.emplace_back(good_client, &load, seed + i);
    for (unsigned i = 0; i < 3; ++i) clients.emplace_back(hostile_client, &load, seed + 10 + i);
    clients.emplace_back(slowloris, &load, seed + 20, 16);
    const auto warm_up = std::chrono::duration<double>(std::max(1.0, seconds / 4));
    const auto end = start_time + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
    std::size_t rss_start = 0, rss_max = 0, heap_start = 0;
    std::string rss_trend;  // RSS at eight points after warm-up, in MiB
    const auto trend_every = (end - start_time - warm_up) / 8;
    auto next_trend = start_time + std::chrono::duration_cast<Clock::duration>(warm_up);
    std::int64_t worst_gap_ns = 0;
    while (Clock::now() < end) {
      std::this_thread::sleep_for(50ms);
      for (const Watchdog& d : dogs)
        worst_gap_ns = std::max(worst_gap_ns, now_ns() - d.last_tick_ns.load());
      if (Clock::now() - start_time >= warm_up) {
        std::size_t rss = rss_bytes();
        if (rss_start == 0) {
          rss_start = rss;
          heap_start = heap_in_use();
        }
        rss_max = std::max(rss_max, rss);
        if (Clock::now() >= next_trend) {
          char mib[32];
          std::snprintf(mib, sizeof mib, "%s%.1f", rss_trend.empty() ? "" : " ", rss / 1048576.0);
          rss_trend += mib;
          next_trend += std::chrono::duration_cast<Clock::duration>(trend_every);
        }
      }
    }
    const std::size_t rss_end = rss_bytes(), heap_end = heap_in_use();
    load.stop.store(true);
    for (auto& t : clients) t.join();
    const long probes_answered = idle > 0 ? child.finish() : 0;
    const double load_seconds = std::chrono::duration<double>(Clock::now() - start_time).count();
    if (idle > 0) {
      EXPECT_EQ(probes_answered, (idle_open + 99) / 100) << "idle connections' probe requests";
    }

    // The clients are gone: the server's handlers notice (EOF, reset) and
    // finish; the descriptors and tasks go back to the baseline.
    std::multiset<std::string> fds_after;
    std::size_t tasks_after = 0;
    for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;) {
      fds_after = open_fds();
      tasks_after = rt.block_on(count_tasks());
      if (fds_after.size() == fds_before.size() && tasks_after == tasks_before) break;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(fds_after.size(), fds_before.size())
        << "open descriptors after the clients left:" << describe(fds_after)
        << "\nbefore:" << describe(fds_before);
    EXPECT_EQ(tasks_after, tasks_before) << "all_tasks() after the clients left";
    const std::size_t heap_left = heap_in_use();

    stop_watchdogs.store(true);
    for (auto& t : dog_tasks) rt.block_on(await_task(t));
    rt.block_on(close_server(server));

    const Counters& c = load.c;
    {
      std::lock_guard lock(load.c.mu);
      EXPECT_EQ(c.good_failed.load(), 0)
          << "well-behaved requests not answered intact; first: "
          << (load.c.failures.empty() ? "" : load.c.failures.front());
    }
    {
      std::lock_guard lock(g_unexpected_mu);
      EXPECT_TRUE(g_unexpected.empty()) << g_unexpected.front();
    }
    EXPECT_EQ(c.over_limit_hung.load(), 0) << "over-limit requests neither answered nor closed";
    EXPECT_GT(c.good_requests.load(), 0);
    for (unsigned w = 0; w < workers; ++w) EXPECT_GT(dogs[w].ticks.load(), 0) << "worker " << w;
    EXPECT_LE(worst_gap_ns, std::chrono::nanoseconds(kWatchdogBound).count())
        << "a worker's watchdog went that long without a tick";
    if (!kSanitized) {
      EXPECT_LE(rss_max, rss_bound(rss_start)) << "RSS after warm-up";
    }
    std::printf(
        "soak %s w%u: %.1f s, connections %ld (+%ld idle, %ld of %ld probes answered), good "
        "requests %ld (+%ld half-close, +%ld slowloris), resets %ld, over-limit %ld, never-read "
        "%ld (%ld filled the buffers), vanished %ld; RSS after warm-up %.1f MiB, max %.1f MiB, "
        "end %.1f MiB (trend: %s); malloc'd and in use %.1f -> %.1f MiB, %.1f MiB once the "
        "clients left; fds %zu before, %zu "
        "after; tasks %zu before, %zu after; watchdog worst "
        "gap %.1f ms; stall reports %ld (longest %.1f ms)\n",
        name, workers, load_seconds, c.connections.load(), idle_open, probes_answered,
        (idle_open + 99) / 100, c.good_requests.load(), c.half_closes.load(),
        c.slowloris_requests.load(), c.resets.load(), c.over_limit.load(), c.never_read.load(),
        c.never_read_filled.load(), c.vanished.load(), rss_start / 1048576.0, rss_max / 1048576.0,
        rss_end / 1048576.0, rss_trend.c_str(), heap_start / 1048576.0, heap_end / 1048576.0,
        heap_left / 1048576.0, fds_before.size(), fds_after.size(), tasks_before, tasks_after,
        worst_gap_ns / 1e6, stalls.load(), longest_stall_ns.load() / 1e6);
  }
}

INSTANTIATE_TEST_SUITE_P(Servers, ChaosSoak,
                         ::testing::Combine(::testing::Values(Kind::echo, Kind::http),
                                            ::testing::Values(1u, 2u, 8u)),
                         [](const ::testing::TestParamInfo<std::tuple<Kind, unsigned>>& info) {
                           return std::string(std::get<0>(info.param) == Kind::echo ? "echo"
                                                                                    : "http") +
                                  "_w" + std::to_string(std::get<1>(info.param));
                         });

}  // namespace

// Injected faults (issue 17, item 3; docs/testing.md, "Fault injection"):
// recv, send, accept, epoll_wait, eventfd writes, posix_spawn and malloc fail
// at chosen rates through tests/fault/fault_shim.cpp (LD_PRELOAD, set by
// ctest), and io_uring completions turn into -ENOBUFS or -ECANCELED through
// the reactor's test seam (detail::io_ring_completion_fault). The echo and
// HTTP servers keep answering, each error reaches its caller as a typed
// exception (std::system_error with the errno, IncompleteReadError for a
// connection that ended mid-message), every reply that arrives is intact,
// and the leak check finds every descriptor and task gone (under ASan also
// every allocation).
#include <dlfcn.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>
#include <weft/reactor/io_ring.hpp>

#include "http_serve.hpp"
#include "weft_test.hpp"

using namespace std::chrono_literals;
using weft::testing::scaled;

namespace {

/// The shim's controls, found in the process (LD_PRELOAD).
struct Shim {
  void (*configure)(const char*) = nullptr;
  void (*malloc_armed)(bool) = nullptr;
  std::uint64_t (*count)(const char*, const char*) = nullptr;
  void (*report)(char*, std::size_t) = nullptr;
  bool loaded() const { return configure && malloc_armed && count && report; }
  std::string text() const {
    char buf[4096];
    report(buf, sizeof buf);
    return buf;
  }
};

const Shim& shim() {
  static const Shim s = [] {
    Shim x;
    x.configure =
        reinterpret_cast<void (*)(const char*)>(dlsym(RTLD_DEFAULT, "weft_fault_configure"));
    x.malloc_armed = reinterpret_cast<void (*)(bool)>(dlsym(RTLD_DEFAULT, "weft_fault_malloc"));
    x.count = reinterpret_cast<std::uint64_t (*)(const char*, const char*)>(
        dlsym(RTLD_DEFAULT, "weft_fault_count"));
    x.report =
        reinterpret_cast<void (*)(char*, std::size_t)>(dlsym(RTLD_DEFAULT, "weft_fault_report"));
    return x;
  }();
  return s;
}

#define REQUIRE_SHIM()                                                         \
  ASSERT_TRUE(shim().loaded()) << "fault_injection_test runs with LD_PRELOAD=" \
                                  "<build>/tests/fault/libweft_fault_shim.so (ctest sets it)"

/// Faults on while alive (none for a null spec).
struct Faults {
  explicit Faults(const char* spec) : on(spec != nullptr) {
    if (on) shim().configure(spec);
  }
  ~Faults() {
    if (on) shim().configure(nullptr);
  }
  bool on;
};

// io_uring completions: every `kCqeEvery`-th final completion without a
// buffer and without a transfer (res <= 0: an end of file, a connect, an
// error) fails instead, alternately with -ENOBUFS and -ECANCELED. One that
// moved bytes or made a descriptor is left alone: the kernel never reports
// a send that went out, or an accepted socket, as failed (turning one into
// an error duplicates the bytes or leaks the socket: the test's doing, not
// the library's).
std::atomic<std::uint64_t> g_cqes{0}, g_enobufs{0}, g_ecanceled{0};
constexpr std::uint64_t kCqeEvery = 3;
int fail_some_completions(int res) noexcept {
  if (res > 0) return res;
  std::uint64_t n = g_cqes.fetch_add(1, std::memory_order_relaxed);
  if (n % kCqeEvery != kCqeEvery - 1) return res;
  if ((n / kCqeEvery) % 2 == 0) {
    g_enobufs.fetch_add(1, std::memory_order_relaxed);
    return -ENOBUFS;
  }
  g_ecanceled.fetch_add(1, std::memory_order_relaxed);
  return -ECANCELED;
}

// io_uring_enter (the reactor's seam, detail::io_ring_enter_fault): every
// `kEnterEvery`-th submit or wait fails before entering the kernel, in turn
// with EINTR, EAGAIN and EBUSY.
std::atomic<std::uint64_t> g_enters{0}, g_enter_eintr{0}, g_enter_eagain{0}, g_enter_ebusy{0};
constexpr std::uint64_t kEnterEvery = 3;
int fail_some_enters() noexcept {
  std::uint64_t n = g_enters.fetch_add(1, std::memory_order_relaxed);
  if (n % kEnterEvery != kEnterEvery - 1) return 0;
  switch ((n / kEnterEvery) % 3) {
    case 0:
      g_enter_eintr.fetch_add(1, std::memory_order_relaxed);
      return -EINTR;
    case 1:
      g_enter_eagain.fetch_add(1, std::memory_order_relaxed);
      return -EAGAIN;
    default:
      g_enter_ebusy.fetch_add(1, std::memory_order_relaxed);
      return -EBUSY;
  }
}

/// What the clients saw: exchanges completed, and the typed errors met.
struct Outcome {
  std::atomic<long> ok{0}, system_errors{0}, incomplete{0}, corrupted{0};
  std::mutex mu;
  std::vector<std::string> untyped;  // guarded by mu: must stay empty
  void other(const std::string& what) {
    std::lock_guard lock(mu);
    untyped.push_back(what);
  }
};

weft::Coro<void> echo(weft::StreamReader reader, weft::StreamWriter writer) {
  try {
    for (;;) {
      std::string line = co_await reader.readline();
      if (line.empty()) break;
      writer.write(line);
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // An injected error on this connection: it ends.
  }
  writer.close();
}

/// One client: `rounds` exchanges, reconnecting after each typed error.
weft::Coro<void> echo_client(std::uint16_t port, int id, int rounds, Outcome* out) {
  int round = 0;
  int failures = 0;
  while (round < rounds && failures < 50 * rounds) {
    try {
      auto [reader, writer] = co_await weft::open_connection("127.0.0.1", port);
      for (; round < rounds; ++round) {
        std::string line = "client " + std::to_string(id) + " round " + std::to_string(round) +
                           " " + std::string(static_cast<std::size_t>(round * 97 % 3000), 'x') +
                           "\n";
        writer.write(line);
        co_await writer.drain();
        std::string back = co_await reader.readline();
        if (back != line) {
          if (back.empty() || back.back() != '\n')
            throw weft::IncompleteReadError(back, std::nullopt);
          out->corrupted.fetch_add(1);
        }
        out->ok.fetch_add(1);
      }
      writer.close();
    } catch (const std::system_error&) {
      out->system_errors.fetch_add(1);
      ++failures;
    } catch (const weft::IncompleteReadError&) {
      out->incomplete.fetch_add(1);  // the server's side of the connection failed
      ++failures;
    } catch (const std::exception& e) {
      out->other(e.what());
      co_return;
    }
  }
}

weft::Coro<void> http_client(std::uint16_t port, int requests, Outcome* out) {
  int done = 0;
  int failures = 0;
  while (done < requests && failures < 50 * requests) {
    try {
      auto [reader, writer] = co_await weft::open_connection("127.0.0.1", port);
      for (; done < requests; ++done) {
        writer.write("GET / HTTP/1.1\r\nHost: weft\r\n\r\n");
        co_await writer.drain();
        std::string head = co_await reader.readuntil("\r\n\r\n");
        std::string body = co_await reader.readexactly(13);
        if (head.rfind("HTTP/1.1 200 OK\r\n", 0) != 0 || body != "Hello, World!")
          out->corrupted.fetch_add(1);
        out->ok.fetch_add(1);
      }
      writer.close();
    } catch (const std::system_error&) {
      out->system_errors.fetch_add(1);
      ++failures;
    } catch (const weft::IncompleteReadError&) {
      out->incomplete.fetch_add(1);
      ++failures;
    } catch (const std::exception& e) {
      out->other(e.what());
      co_return;
    }
  }
}

/// Keeps a 1 ms timer going: the runtime's timers and wake-ups still work.
weft::Coro<void> ticker(std::atomic<long>* ticks, std::atomic<bool>* stop) {
  while (!stop->load()) {
    co_await weft::sleep(1ms);
    ticks->fetch_add(1);
  }
}

weft::Coro<void> offloader(std::atomic<long>* offloads, std::atomic<bool>* stop) {
  while (!stop->load()) {
    auto one = [] { return 1; };
    offloads->fetch_add(co_await weft::to_thread(one));
  }
}

enum class Server { echo, http };

struct Run {
  unsigned workers;
  bool io_uring;
  Server server;
  /// The shim's faults while the clients run; null: none.
  const char* spec = "recv=0.05,send=0.05,accept=0.2,epoll_wait=0.05,eventfd=0.05";
};

weft::Coro<int> serve_under_faults(Run run, Outcome* out, std::atomic<long>* ticks,
                                   std::atomic<long>* offloads) {
  weft::ClientHandler handler = run.server == Server::echo
                                    ? weft::ClientHandler(echo)
                                    : weft::ClientHandler(http_hello::serve_client);
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  const std::uint16_t port = server.sockets().at(0).port();
  std::atomic<bool> stop{false};
  std::vector<weft::Task<void>> background;
  background.push_back(weft::create_task(ticker(ticks, &stop)));
  background.push_back(weft::create_task(offloader(offloads, &stop)));
  {
    // By default every socket call fails 1 time in 20, accept 1 in 5, the
    // loop's epoll_wait and eventfd wake-ups 1 in 20.
    Faults faults(run.spec);
    std::vector<weft::Task<void>> clients;
    const int n = static_cast<int>(scaled(40));
    for (int i = 0; i < n; ++i)
      clients.push_back(weft::create_task(run.server == Server::echo ? echo_client(port, i, 10, out)
                                                                     : http_client(port, 10, out)));
    for (auto& c : clients) co_await c;
  }
  // Faults off: the server still answers a well-behaved client exactly.
  Outcome clean;
  if (run.server == Server::echo)
    co_await echo_client(port, -1, 3, &clean);
  else
    co_await http_client(port, 3, &clean);
  EXPECT_EQ(clean.ok.load(), 3);
  EXPECT_EQ(clean.system_errors.load() + clean.incomplete.load() + clean.corrupted.load(), 0);
  stop.store(true);
  for (auto& t : background) co_await t;
  server.close();
  co_await server.wait_closed();
  co_return 0;
}

class FaultInjection : public ::testing::TestWithParam<std::tuple<unsigned, bool>> {};

void run_servers_under_faults(Server which) {
  REQUIRE_SHIM();
  auto [workers, io_uring] = FaultInjection::GetParam();
  Outcome out;
  std::atomic<long> ticks{0}, offloads{0};
  const std::uint64_t enobufs_before = g_enobufs.load(), ecanceled_before = g_ecanceled.load();
  if (io_uring) weft::detail::io_ring_completion_fault = fail_some_completions;
  weft::RunOptions options{.workers = workers};
  options.loop.io_uring = io_uring;
  int rc =
      weft::run(serve_under_faults({workers, io_uring, which}, &out, &ticks, &offloads), options);
  weft::detail::io_ring_completion_fault = nullptr;
  EXPECT_EQ(rc, 0);
  {
    std::lock_guard lock(out.mu);
    EXPECT_TRUE(out.untyped.empty()) << "an error that is not typed: " << out.untyped.front();
  }
  EXPECT_EQ(out.corrupted.load(), 0) << "a reply arrived altered";
  EXPECT_GT(out.ok.load(), 0);
  EXPECT_GT(ticks.load(), 0);
  EXPECT_GT(offloads.load(), 0);
  std::printf(
      "faults (%s, %u workers, %s): exchanges %ld, system_error %ld, incomplete %ld; "
      "io_uring completions failed: ENOBUFS %llu, ECANCELED %llu\n%s",
      which == Server::echo ? "echo" : "http", workers, io_uring ? "io_uring" : "epoll",
      out.ok.load(), out.system_errors.load(), out.incomplete.load(),
      static_cast<unsigned long long>(g_enobufs.load() - enobufs_before),
      static_cast<unsigned long long>(g_ecanceled.load() - ecanceled_before),
      shim().text().c_str());
}

TEST_P(FaultInjection, EchoServerKeepsAnsweringUnderSocketFaults) {
  run_servers_under_faults(Server::echo);
}

TEST_P(FaultInjection, HttpServerKeepsAnsweringUnderSocketFaults) {
  run_servers_under_faults(Server::http);
}

INSTANTIATE_TEST_SUITE_P(Faults, FaultInjection,
                         ::testing::Combine(::testing::Values(1u, 2u, 8u), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<unsigned, bool>>& info) {
                           return "w" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_io_uring" : "_epoll");
                         });

// io_uring_enter failing with EINTR, EAGAIN or EBUSY (every third submit
// or wait): the loops retry with the requests still queued, so no client
// sees an error, every exchange completes intact, timers and offloads go on.
class FaultInjectionEnter : public ::testing::TestWithParam<std::tuple<unsigned, Server>> {};

/// Whether this kernel (and its seccomp policy) gives us an io_uring.
bool ring_available() {
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  bool ok = weft::detail::IoRing::create(ep, true) != nullptr;
  ::close(ep);
  return ok;
}

TEST_P(FaultInjectionEnter, RingEnterFailuresAreRetriedAndNoClientSeesThem) {
  if (!ring_available()) GTEST_SKIP() << "io_uring is not available here (kernel or seccomp)";
  auto [workers, which] = GetParam();
  Outcome out;
  std::atomic<long> ticks{0}, offloads{0};
  const std::uint64_t eintr = g_enter_eintr.load(), eagain = g_enter_eagain.load(),
                      ebusy = g_enter_ebusy.load();
  weft::detail::io_ring_enter_fault = fail_some_enters;
  weft::RunOptions options{.workers = workers};
  options.loop.io_uring = true;
  struct Run run {
    workers, true, which, nullptr
  };  // "struct": ::testing::Test has a Run()
  int rc = weft::run(serve_under_faults(run, &out, &ticks, &offloads), options);
  weft::detail::io_ring_enter_fault = nullptr;
  EXPECT_EQ(rc, 0);
  {
    std::lock_guard lock(out.mu);
    EXPECT_TRUE(out.untyped.empty()) << out.untyped.front();
  }
  const long clients = scaled(40);
  EXPECT_EQ(out.ok.load(), clients * 10);
  EXPECT_EQ(out.system_errors.load() + out.incomplete.load() + out.corrupted.load(), 0);
  EXPECT_GT(ticks.load(), 0);
  EXPECT_GT(offloads.load(), 0);
  const std::uint64_t injected =
      g_enter_eintr.load() - eintr + g_enter_eagain.load() - eagain + g_enter_ebusy.load() - ebusy;
  EXPECT_GT(injected, 0u);
  std::printf(
      "faults (io_uring_enter, %s, %u workers): exchanges %ld; EINTR %llu, EAGAIN %llu, "
      "EBUSY %llu\n",
      which == Server::echo ? "echo" : "http", workers, out.ok.load(),
      static_cast<unsigned long long>(g_enter_eintr.load() - eintr),
      static_cast<unsigned long long>(g_enter_eagain.load() - eagain),
      static_cast<unsigned long long>(g_enter_ebusy.load() - ebusy));
}

INSTANTIATE_TEST_SUITE_P(Faults, FaultInjectionEnter,
                         ::testing::Combine(::testing::Values(1u, 2u, 8u),
                                            ::testing::Values(Server::echo, Server::http)),
                         [](const ::testing::TestParamInfo<std::tuple<unsigned, Server>>& info) {
                           return std::string(std::get<1>(info.param) == Server::echo ? "echo"
                                                                                      : "http") +
                                  "_w" + std::to_string(std::get<0>(info.param));
                         });

// posix_spawn failing with EAGAIN or ENOMEM: create_subprocess_exec throws
// std::system_error with that errno and leaves no pipe open.
weft::Coro<void> spawn_some(int n, int* started, int* refused, std::vector<std::string>* untyped) {
  std::vector<std::string> args{"-c", "read x; echo \"$x\""};
  weft::SubprocessOptions options{.stdin_pipe = true, .stdout_pipe = true};
  for (int i = 0; i < n; ++i) {
    try {
      weft::Process p = co_await weft::create_subprocess_exec("sh", args, options);
      auto [out, err] = co_await p.communicate("ping\n");
      EXPECT_EQ(out, "ping\n");
      EXPECT_EQ(co_await p.wait(), 0);
      ++*started;
    } catch (const std::system_error& e) {
      if (e.code().value() != EAGAIN && e.code().value() != ENOMEM) untyped->push_back(e.what());
      ++*refused;
    } catch (const std::exception& e) {
      untyped->push_back(e.what());
    }
  }
}

TEST(FaultInjectionSpawn, SubprocessStartFailuresAreSystemErrorsWithNoPipeLeft) {
  REQUIRE_SHIM();
  int started = 0, refused = 0;
  std::vector<std::string> untyped;
  {
    Faults faults("spawn=0.5");
    weft::run(spawn_some(40, &started, &refused, &untyped), {.workers = 2});
  }
  EXPECT_TRUE(untyped.empty()) << untyped.front();
  EXPECT_GT(started, 0);
  EXPECT_GT(refused, 0);
  std::printf("faults (spawn): started %d, refused %d\n%s", started, refused,
              shim().text().c_str());
}

// malloc returning NULL on the calling thread while it calls into weft:
// each call either works or throws std::bad_alloc, and what it had taken
// goes back (the live task count and the queue agree afterwards).
weft::Coro<int> nothing() { co_return 1; }

weft::Coro<void> allocate_under_faults(long* ok, long* bad_alloc) {
  weft::Queue<std::string> queue;
  std::vector<weft::Task<int>> tasks;
  tasks.reserve(4000);
  long queued = 0;
  for (int i = 0; i < 2000; ++i) {
    shim().malloc_armed(true);
    try {
      tasks.push_back(weft::create_task(nothing()));
      queue.put_nowait(std::string(100, 'q'));
      ++queued;
      ++*ok;
    } catch (const std::bad_alloc&) {
      ++*bad_alloc;
    }
    shim().malloc_armed(false);
  }
  for (auto& t : tasks) EXPECT_EQ(co_await t, 1);
  EXPECT_EQ(static_cast<long>(queue.qsize()), queued);
}

TEST(FaultInjectionMalloc, CreateTaskAndPutNowaitThrowBadAllocAndLeakNothing) {
  REQUIRE_SHIM();
#if defined(WEFT_SANITIZED)
  GTEST_SKIP() << "the sanitizer's allocator comes before the shim: malloc faults need an "
                  "uninstrumented build (default and gcc presets)";
#endif
  long ok = 0, bad_alloc = 0;
  {
    Faults faults("malloc=0.02");
    weft::run(allocate_under_faults(&ok, &bad_alloc), {.workers = 1});
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(bad_alloc, 0);
  std::printf("faults (malloc): calls that worked %ld, bad_alloc %ld\n%s", ok, bad_alloc,
              shim().text().c_str());
}

}  // namespace

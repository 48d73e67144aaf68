// Standalone Asio (libasio-dev, no Boost) peer for weft's side-by-side
// benchmarks (issue 6), written with C++20 coroutines (asio::awaitable,
// co_spawn). Threading model: ONE io_context run by N threads (asio's
// "thread pool" model; io_context's scheduler is a shared queue, so there is
// no work stealing to do and every task may run on any thread). Cross-task
// signalling uses asio::experimental::concurrent_channel, the thread-safe
// channel, since with N > 1 the two ends may run on different threads.
//
// Usage: asio_peer <workload> <workers> [--quick] [--port P]
// Prints one line: peer=asio workload=<w> workers=<n> seconds=<s> ops_per_sec=<x> [extra]
#include <asio.hpp>
#include <asio/experimental/concurrent_channel.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;
template <class... T>
using Chan = asio::experimental::concurrent_channel<void(asio::error_code, T...)>;

namespace {

long g_scale = 1;

struct Result {
  double seconds = 0;
  double ops = 0;
  std::string extra;
};

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

long status_kib(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  size_t klen = std::strlen(key);
  while (std::getline(status, line))
    if (line.compare(0, klen, key) == 0) return std::strtol(line.c_str() + klen, nullptr, 10);
  return 0;
}

// Count down; the last one signals (a one-slot channel stores the signal if
// nobody waits yet).
struct Latch {
  std::atomic<long> left;
  Chan<bool> done;  // asio 1.22 cannot instantiate a channel of void(error_code)
  Latch(asio::any_io_executor ex, long n) : left(n), done(ex, 1) {}
  void count_down() {
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) done.try_send(asio::error_code{}, true);
  }
  awaitable<void> wait() { co_await done.async_receive(use_awaitable); }
};

// asio::co_spawn starts the new coroutine inline when called from a thread
// already running the executor (its entry point dispatches). Every other peer's
// spawn schedules the task and returns (tokio::spawn, go, create_task), and a
// 100,000-deep chained_spawn would otherwise recurse on the stack, so spawn()
// posts first: the task is queued and starts when a worker picks it up.
void spawn(const asio::any_io_executor& ex, awaitable<void> task) {
  asio::post(ex, [ex, task = std::move(task)]() mutable { asio::co_spawn(ex, std::move(task), asio::detached); });
}

awaitable<void> signal_done(Latch* latch) {
  latch->count_down();
  co_return;
}

awaitable<Result> spawn_many() {
  auto ex = co_await asio::this_coro::executor;
  const long n = 1'000'000 / g_scale;
  Latch latch(ex, n);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) spawn(ex, signal_done(&latch));
  co_await latch.wait();
  co_return Result{since(t0), double(n), ""};
}

awaitable<void> yielder(long yields, Latch* latch) {
  auto ex = co_await asio::this_coro::executor;
  for (long i = 0; i < yields; ++i) co_await asio::post(ex, use_awaitable);
  latch->count_down();
}

awaitable<Result> yield_many() {
  auto ex = co_await asio::this_coro::executor;
  const long tasks = 1000, yields = 1000 / g_scale;
  Latch latch(ex, tasks);
  auto t0 = Clock::now();
  for (long i = 0; i < tasks; ++i) spawn(ex, yielder(yields, &latch));
  co_await latch.wait();
  co_return Result{since(t0), double(tasks * yields), ""};
}

// One request: value, a fresh one-shot channel for the reply, and the channel
// that will carry the next request.
struct PingChan;
struct Ping {
  long v;
  std::shared_ptr<Chan<long>> reply;
  std::shared_ptr<PingChan> next;
};
struct PingChan : Chan<Ping> {
  using Chan<Ping>::Chan;
};

awaitable<void> ponger(std::shared_ptr<PingChan> in, long rounds, Latch* finished) {
  for (long i = 0; i < rounds; ++i) {
    Ping p = co_await in->async_receive(use_awaitable);
    p.reply->try_send(asio::error_code{}, p.v + 1);
    in = std::move(p.next);
  }
  finished->count_down();
}

awaitable<Result> ping_pong() {
  auto ex = co_await asio::this_coro::executor;
  const long rounds = 200'000 / g_scale;
  Latch finished(ex, 1);
  auto cur = std::make_shared<PingChan>(ex, 1);
  auto t0 = Clock::now();
  spawn(ex, ponger(cur, rounds, &finished));
  for (long i = 0; i < rounds; ++i) {
    auto next = std::make_shared<PingChan>(ex, 1);
    auto reply = std::make_shared<Chan<long>>(ex, 1);
    cur->try_send(asio::error_code{}, Ping{i, reply, next});
    cur = std::move(next);
    long r = co_await reply->async_receive(use_awaitable);
    if (r != i + 1) std::abort();
  }
  co_await finished.wait();
  co_return Result{since(t0), double(rounds), ""};
}

awaitable<void> chain(long left, Latch* done) {
  if (left == 0) {
    done->count_down();
    co_return;
  }
  spawn(co_await asio::this_coro::executor, chain(left - 1, done));
}

awaitable<Result> chained_spawn() {
  auto ex = co_await asio::this_coro::executor;
  const long depth = 100'000 / g_scale;
  Latch done(ex, 1);
  auto t0 = Clock::now();
  spawn(ex, chain(depth, &done));
  co_await done.wait();
  co_return Result{since(t0), double(depth), ""};
}

// splitmix64, seed 42: the same sleep durations in every peer.
struct SplitMix {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

awaitable<void> sleeper(std::chrono::microseconds d, double* late_us, Latch* latch) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto deadline = Clock::now() + d;
  timer.expires_at(deadline);
  co_await timer.async_wait(use_awaitable);
  *late_us = std::chrono::duration<double, std::micro>(Clock::now() - deadline).count();
  latch->count_down();
}

awaitable<Result> timers() {
  auto ex = co_await asio::this_coro::executor;
  const long n = 100'000 / g_scale;
  SplitMix rng{42};
  std::vector<double> late(n);
  Latch latch(ex, n);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    auto d = std::chrono::microseconds(1000 + rng.next() % 49'001);
    spawn(ex, sleeper(d, &late[i], &latch));
  }
  co_await latch.wait();
  double secs = since(t0), sum = 0, max = 0;
  for (double l : late) {
    sum += l;
    if (l > max) max = l;
  }
  char extra[128];
  std::snprintf(extra, sizeof extra, "mean_late_us=%.1f max_late_us=%.1f", sum / n, max);
  co_return Result{secs, double(n), extra};
}

// The shared event: a zero-capacity channel that nobody sends on; close()
// completes every pending receive at once (with channel_closed), and a receive
// started after close() completes at once, so a waiter that counted itself
// parked but had not yet started its receive cannot be missed.
awaitable<void> idle_waiter(Chan<bool>* gate, std::atomic<long>* parked, Latch* finished) {
  asio::error_code ec;
  parked->fetch_add(1, std::memory_order_relaxed);
  co_await gate->async_receive(asio::redirect_error(use_awaitable, ec));
  finished->count_down();
}

awaitable<Result> idle_memory() {
  auto ex = co_await asio::this_coro::executor;
  const long n = 1'000'000 / g_scale;
  Chan<bool> gate(ex, 0);
  std::atomic<long> parked{0};
  Latch finished(ex, n);
  long before = status_kib("VmRSS:");
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) spawn(ex, idle_waiter(&gate, &parked, &finished));
  asio::steady_timer poll(ex);
  while (parked.load(std::memory_order_relaxed) < n) {
    poll.expires_after(std::chrono::milliseconds(1));
    co_await poll.async_wait(use_awaitable);
  }
  long peak = status_kib("VmHWM:");
  gate.close();
  co_await finished.wait();
  char extra[96];
  std::snprintf(extra, sizeof extra, "bytes_per_task=%.1f", double(peak - before) * 1024.0 / double(n));
  co_return Result{since(t0), double(n), extra};
}

std::uint64_t mix_work(std::uint64_t seed, long iterations) {
  std::uint64_t x = seed;
  for (long i = 0; i < iterations; ++i) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    x += static_cast<std::uint64_t>(i);
  }
  return x;
}

awaitable<void> cpu_task(std::uint64_t seed, long iterations, std::uint64_t* out, Latch* latch) {
  *out = mix_work(seed, iterations);
  latch->count_down();
  co_return;
}

awaitable<Result> fanout() {
  auto ex = co_await asio::this_coro::executor;
  const long tasks = 64, iterations = 2'000'000 / g_scale;
  std::vector<std::uint64_t> results(tasks);
  Latch latch(ex, tasks);
  auto t0 = Clock::now();
  for (long i = 0; i < tasks; ++i)
    spawn(ex, cpu_task(std::uint64_t(i) + 1, iterations, &results[i], &latch));
  co_await latch.wait();
  std::uint64_t sum = 0;
  for (auto r : results) sum += r;
  char extra[64];
  std::snprintf(extra, sizeof extra, "checksum=%llu", static_cast<unsigned long long>(sum % 1000003));
  co_return Result{since(t0), double(tasks), extra};
}

awaitable<void> echo_session(asio::ip::tcp::socket sock) {
  std::vector<char> buf(16 * 1024);
  asio::error_code ec;
  for (;;) {
    std::size_t n = co_await sock.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(sock, asio::buffer(buf.data(), n), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
  }
}

awaitable<void> echo_listener(unsigned short port) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::acceptor acceptor(ex, {asio::ip::address_v4::loopback(), port});
  std::printf("listening port=%u\n", port);
  std::fflush(stdout);
  for (;;) {
    auto sock = co_await acceptor.async_accept(use_awaitable);
    sock.set_option(asio::ip::tcp::no_delay(true));
    spawn(ex, echo_session(std::move(sock)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <workload> <workers> [--quick] [--port P]\n", argv[0]);
    return 2;
  }
  std::string workload = argv[1];
  int workers = std::atoi(argv[2]);
  if (workers < 1) workers = 1;
  unsigned short port = 0;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) g_scale = 10;
    else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = static_cast<unsigned short>(std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  awaitable<Result> (*fn)() = nullptr;
  if (workload == "spawn_many") fn = spawn_many;
  else if (workload == "yield_many") fn = yield_many;
  else if (workload == "ping_pong") fn = ping_pong;
  else if (workload == "chained_spawn") fn = chained_spawn;
  else if (workload == "timers") fn = timers;
  else if (workload == "idle_memory") fn = idle_memory;
  else if (workload == "fanout") fn = fanout;
  else if (workload != "echo_server") {
    std::fprintf(stderr, "unknown workload '%s'\n", workload.c_str());
    return 2;
  }

  asio::io_context ctx(workers);  // concurrency hint: 1 enables the single-thread fast path
  std::optional<Result> result;
  if (fn) {
    asio::co_spawn(ctx, fn(), [&](std::exception_ptr e, Result r) {
      if (e) std::rethrow_exception(e);
      result = std::move(r);
    });
  } else {
    asio::co_spawn(ctx, echo_listener(port), asio::detached);
  }
  std::vector<std::thread> threads;
  for (int i = 1; i < workers; ++i) threads.emplace_back([&] { ctx.run(); });
  ctx.run();
  for (auto& t : threads) t.join();
  if (result)
    std::printf("peer=asio workload=%s workers=%d seconds=%.6f ops_per_sec=%.1f%s%s\n", workload.c_str(), workers,
                result->seconds, result->ops / result->seconds, result->extra.empty() ? "" : " ",
                result->extra.c_str());
  return 0;
}

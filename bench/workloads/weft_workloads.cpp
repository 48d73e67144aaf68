// weft's side of the peer comparison (issue 6): the same workload
// definitions as bench/peers/*, one machine-readable line per run:
//   peer=weft workload=<w> workers=<n> seconds=<wall> ops_per_sec=<x> [extra...]
// Usage: weft_workloads <workload> <workers> [--quick] [--eager]
//   --eager: RunOptions::eager_tasks (every task starts inside create_task);
//            reported as peer=weft-eager
//   --no-coop: RunOptions::coop_budget = 0 (for A/B runs of the budget)
//   --hooks: every RunOptions hook set (each bumps a relaxed counter), to
//            measure their cost (bench/results/observability-2026-12-07.md)
//   --no-stall-detector: RunOptions::stall_threshold = 0 (no watchdog thread)
//   --no-lifo: RunOptions::lifo_slot = false (for A/B runs of the LIFO slot)
//   workloads: spawn_many yield_many ping_pong chained_spawn timers idle_memory fanout
//              mutex mpsc skynet fib cache_hit_lazy cache_hit_eager
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

long g_scale = 1;  // --quick divides counts by 10

struct Result {
  double seconds;
  double ops;
  std::string extra;
};

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

long peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}
long current_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}

// spawn_many: spawn N tasks that only signal completion; await all.
weft::Coro<void> signal_done(std::atomic<long>* left, weft::Future<void> all_done) {
  if (left->fetch_sub(1, std::memory_order_acq_rel) == 1) all_done.set_result();
  co_return;
}
weft::Coro<Result> spawn_many() {
  const long n = 1'000'000 / g_scale;
  std::atomic<long> left{n};
  weft::Future<void> all_done;
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) weft::create_task(signal_done(&left, all_done));
  co_await all_done;
  co_return Result{since(t0), double(n), ""};
}

// yield_many: 1,000 tasks x 1,000 yields.
weft::Coro<void> yielder(long yields) {
  for (long i = 0; i < yields; ++i) co_await weft::sleep(0s);
}
weft::Coro<Result> yield_many() {
  const long tasks = 1000, yields = 1000 / g_scale;
  auto t0 = Clock::now();
  std::vector<weft::Task<void>> all;
  all.reserve(tasks);
  for (long i = 0; i < tasks; ++i) all.push_back(weft::create_task(yielder(yields)));
  for (auto& t : all) co_await t;
  co_return Result{since(t0), double(tasks * yields), ""};
}

// ping_pong: N round trips between two tasks through one-shot futures.
struct Exchange {
  weft::Future<long> request;   // the next request the ponger awaits
  weft::Future<long> response;  // the response to the current request
};
weft::Coro<void> ponger(Exchange* ex, long rounds, weft::Future<long> current) {
  for (long i = 0; i < rounds; ++i) {
    long v = co_await current;
    // ex was written by the pinger before it completed `current`.
    weft::Future<long> response = ex->response;
    current = ex->request;
    response.set_result(v + 1);
  }
}
weft::Coro<Result> ping_pong() {
  const long rounds = 200'000 / g_scale;
  Exchange ex;
  auto t0 = Clock::now();
  auto pong = weft::create_task(ponger(&ex, rounds, ex.request));
  for (long i = 0; i < rounds; ++i) {
    weft::Future<long> current = ex.request;
    weft::Future<long> response;
    ex.response = response;
    ex.request = weft::Future<long>();
    current.set_result(i);
    long r = co_await response;
    if (r != i + 1) std::abort();
  }
  co_await pong;
  co_return Result{since(t0), double(rounds), ""};
}

// chained_spawn: each task spawns the next, N deep; the last signals.
weft::Coro<void> chain(long left, weft::Future<void> done) {
  if (left == 0) {
    done.set_result();
    co_return;
  }
  weft::create_task(chain(left - 1, done));
}
weft::Coro<Result> chained_spawn() {
  const long depth = 100'000 / g_scale;
  weft::Future<void> done;
  auto t0 = Clock::now();
  weft::create_task(chain(depth, done));
  co_await done;
  co_return Result{since(t0), double(depth), ""};
}

// timers: N tasks sleeping uniform 1-50 ms (seed 42); lateness = wake - deadline.
weft::Coro<void> sleeper(std::chrono::microseconds d, double* lateness_us) {
  auto deadline = Clock::now() + d;
  co_await weft::sleep(d);
  *lateness_us = std::chrono::duration<double, std::micro>(Clock::now() - deadline).count();
}
weft::Coro<Result> timers() {
  const long n = 100'000 / g_scale;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> ms(1000, 50000);
  std::vector<double> lateness(n);
  auto t0 = Clock::now();
  std::vector<weft::Task<void>> all;
  all.reserve(n);
  for (long i = 0; i < n; ++i)
    all.push_back(weft::create_task(sleeper(std::chrono::microseconds(ms(rng)), &lateness[i])));
  for (auto& t : all) co_await t;
  double secs = since(t0), sum = 0, max = 0;
  for (double l : lateness) {
    sum += l;
    if (l > max) max = l;
  }
  char extra[128];
  std::snprintf(extra, sizeof extra, "mean_late_us=%.1f max_late_us=%.1f", sum / n, max);
  co_return Result{secs, double(n), extra};
}

// idle_memory: N tasks awaiting one shared future; (peak RSS - RSS before) / N.
weft::Coro<void> idle_waiter(weft::Future<void> gate, std::atomic<long>* parked) {
  parked->fetch_add(1, std::memory_order_relaxed);
  co_await gate;
}
weft::Coro<Result> idle_memory() {
  const long n = 1'000'000 / g_scale;
  long before = current_rss_kib();
  weft::Future<void> gate;
  std::atomic<long> parked{0};
  auto t0 = Clock::now();
  std::vector<weft::Task<void>> all;
  all.reserve(n);
  long handles_kib = (n * long(sizeof(weft::Task<void>))) / 1024;
  for (long i = 0; i < n; ++i) all.push_back(weft::create_task(idle_waiter(gate, &parked)));
  while (parked.load(std::memory_order_relaxed) < n) co_await weft::sleep(1ms);
  long peak = peak_rss_kib();
  gate.set_result();
  for (auto& t : all) co_await t;
  double per_task = double(peak - before - handles_kib) * 1024.0 / double(n);
  char extra[96];
  std::snprintf(extra, sizeof extra, "bytes_per_task=%.1f", per_task);
  co_return Result{since(t0), double(n), extra};
}

// fanout: 64 CPU-bound tasks (integer hash mixing), to show parallel speed-up.
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
weft::Coro<std::uint64_t> cpu_task(std::uint64_t seed, long iterations) {
  co_return mix_work(seed, iterations);
}
weft::Coro<Result> fanout() {
  const long tasks = 64, iterations = 2'000'000 / g_scale;
  auto t0 = Clock::now();
  std::vector<weft::Task<std::uint64_t>> all;
  for (long i = 0; i < tasks; ++i)
    all.push_back(weft::create_task(cpu_task(std::uint64_t(i) + 1, iterations)));
  std::uint64_t sum = 0;
  for (auto& t : all) sum += co_await t;
  char extra[64];
  std::snprintf(extra, sizeof extra, "checksum=%llu",
                static_cast<unsigned long long>(sum % 1000003));
  co_return Result{since(t0), double(tasks), extra};
}

// mutex: W = max(2, 2 x workers) tasks, each 100,000 lock/increment/unlock on
// one shared weft::Lock; ops = total increments; the final count is checked.
unsigned g_workers = 1;
weft::Coro<void> mutex_worker(weft::Lock* lock, long* count, long iterations) {
  for (long i = 0; i < iterations; ++i) {
    co_await lock->acquire();
    ++*count;
    lock->release();
  }
}
weft::Coro<Result> mutex_bench() {
  const long tasks = g_workers * 2 < 2 ? 2 : long(g_workers) * 2;
  const long iterations = 100'000 / g_scale;
  weft::Lock lock;
  long count = 0;
  auto t0 = Clock::now();
  std::vector<weft::Task<void>> all;
  all.reserve(tasks);
  for (long i = 0; i < tasks; ++i)
    all.push_back(weft::create_task(mutex_worker(&lock, &count, iterations)));
  for (auto& t : all) co_await t;
  double secs = since(t0);
  co_await lock.acquire();
  long final_count = count;
  lock.release();
  if (final_count != tasks * iterations) {
    std::fprintf(stderr, "mutex: count %ld != %ld\n", final_count, tasks * iterations);
    std::abort();
  }
  char extra[64];
  std::snprintf(extra, sizeof extra, "tasks=%ld", tasks);
  co_return Result{secs, double(tasks * iterations), extra};
}

// mpsc: 4 producers x 250,000 integers into one weft::Queue<long>(1024),
// drained by one consumer task; ops = items received; the sum is checked.
weft::Coro<void> producer(weft::Queue<long>* q, long first, long n) {
  for (long i = 0; i < n; ++i) co_await q->put(first + i);
}
weft::Coro<long> consumer(weft::Queue<long>* q, long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await q->get();
  co_return sum;
}
weft::Coro<Result> mpsc() {
  const long producers = 4, per = 250'000 / g_scale, total = producers * per;
  weft::Queue<long> q(1024);
  auto t0 = Clock::now();
  auto cons = weft::create_task(consumer(&q, total));
  std::vector<weft::Task<void>> prods;
  for (long p = 0; p < producers; ++p)
    prods.push_back(weft::create_task(producer(&q, p * per, per)));
  long sum = co_await cons;
  double secs = since(t0);
  for (auto& t : prods) co_await t;
  if (sum != total * (total - 1) / 2) {
    std::fprintf(stderr, "mpsc: sum %ld != %ld\n", sum, total * (total - 1) / 2);
    std::abort();
  }
  co_return Result{secs, double(total), ""};
}

// skynet: a 10-ary tree of tasks with 1,000,000 leaves (1,111,111 tasks);
// each node creates its 10 children, then awaits them in order; a leaf
// returns its number. ops = tasks; the sum is checked; peak RSS reported.
weft::Coro<long> skynet_node(long num, long size) {
  if (size == 1) co_return num;
  std::vector<weft::Task<long>> children;
  children.reserve(10);
  long step = size / 10;
  for (long i = 0; i < 10; ++i)
    children.push_back(weft::create_task(skynet_node(num + i * step, step)));
  long sum = 0;
  for (auto& c : children) sum += co_await c;
  co_return sum;
}
weft::Coro<Result> skynet() {
  const long leaves = g_scale == 1 ? 1'000'000 : 100'000;
  long tasks = 0;
  for (long level = 1; level <= leaves; level *= 10) tasks += level;
  auto t0 = Clock::now();
  long sum = co_await skynet_node(0, leaves);
  double secs = since(t0);
  if (sum != leaves * (leaves - 1) / 2) {
    std::fprintf(stderr, "skynet: sum %ld != %ld\n", sum, leaves * (leaves - 1) / 2);
    std::abort();
  }
  char extra[64];
  std::snprintf(extra, sizeof extra, "tasks=%ld peak_rss_kib=%ld", tasks, peak_rss_kib());
  co_return Result{secs, double(tasks - 1), extra};
}

// fib: fib(30) with a task per call: calls(n) = 2 fib(n+1) - 1 = 2,692,537;
// the root call runs in the driver, so ops = tasks = calls - 1.
weft::Coro<long> fib_task(int n) {
  if (n < 2) co_return n;
  auto a = weft::create_task(fib_task(n - 1));
  auto b = weft::create_task(fib_task(n - 2));
  long x = co_await a;
  long y = co_await b;
  co_return x + y;
}
weft::Coro<Result> fib() {
  const int n = g_scale == 1 ? 30 : 25;
  long calls = 0;
  {
    long a = 1, b = 1;  // fib(1), fib(2); after the loop b = fib(n+1)
    for (int i = 2; i <= n; ++i) {
      long c = a + b;
      a = b;
      b = c;
    }
    calls = 2 * b - 1;
  }
  auto t0 = Clock::now();
  long v = co_await fib_task(n);
  double secs = since(t0);
  char extra[64];
  std::snprintf(extra, sizeof extra, "fib=%ld peak_rss_kib=%ld", v, peak_rss_kib());
  co_return Result{secs, double(calls - 1), extra};
}

// cache_hit: 1,000,000 tasks whose body finishes without suspending (a lookup
// that hits), each awaited right away; eager start runs them inside
// create_task and never schedules them. mode: eager or lazy.
bool g_eager = false;
weft::Coro<long> lookup(long key) { co_return key * 2; }
weft::Coro<Result> cache_hit() {
  const long n = 1'000'000 / g_scale;
  weft::TaskOptions o;
  o.eager = g_eager;
  long sum = 0;
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    auto t = weft::create_task(lookup(i), o);
    sum += co_await t;
  }
  double secs = since(t0);
  if (sum != n * (n - 1)) std::abort();
  co_return Result{secs, double(n), g_eager ? "mode=eager" : "mode=lazy"};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <workload> <workers> [--quick]\n", argv[0]);
    return 2;
  }
  std::string workload = argv[1];
  unsigned workers = static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10));
  bool eager_tasks = false, coop_off = false, hooks = false, stall_off = false, lifo_off = false;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) g_scale = 10;
    if (std::strcmp(argv[i], "--eager") == 0) eager_tasks = true;
    if (std::strcmp(argv[i], "--no-coop") == 0) coop_off = true;
    if (std::strcmp(argv[i], "--hooks") == 0) hooks = true;
    if (std::strcmp(argv[i], "--no-stall-detector") == 0) stall_off = true;
    if (std::strcmp(argv[i], "--no-lifo") == 0) lifo_off = true;
  }
  g_workers = workers;
  weft::Coro<Result> (*fn)() = nullptr;
  if (workload == "spawn_many")
    fn = spawn_many;
  else if (workload == "yield_many")
    fn = yield_many;
  else if (workload == "ping_pong")
    fn = ping_pong;
  else if (workload == "chained_spawn")
    fn = chained_spawn;
  else if (workload == "timers")
    fn = timers;
  else if (workload == "idle_memory")
    fn = idle_memory;
  else if (workload == "fanout")
    fn = fanout;
  else if (workload == "mutex")
    fn = mutex_bench;
  else if (workload == "mpsc")
    fn = mpsc;
  else if (workload == "skynet")
    fn = skynet;
  else if (workload == "fib")
    fn = fib;
  else if (workload == "cache_hit_lazy" || workload == "cache_hit_eager") {
    g_eager = workload == "cache_hit_eager";
    fn = cache_hit;
  }
  if (!fn) {
    std::fprintf(stderr, "unknown workload '%s'\n", workload.c_str());
    return 2;
  }
  weft::RunOptions options;
  options.workers = workers;
  options.eager_tasks = eager_tasks;
  if (coop_off) options.coop_budget = 0;
  if (stall_off) options.stall_threshold = std::chrono::nanoseconds(0);
  static std::atomic<std::uint64_t> hook_calls{0};
  if (hooks) {
    auto task_hook = [](const weft::TaskMeta&) {
      hook_calls.fetch_add(1, std::memory_order_relaxed);
    };
    auto worker_hook = [](unsigned) { hook_calls.fetch_add(1, std::memory_order_relaxed); };
    options.on_task_spawn = task_hook;
    options.on_task_poll_start = task_hook;
    options.on_task_poll_end = task_hook;
    options.on_task_terminate = task_hook;
    options.on_worker_park = worker_hook;
    options.on_worker_unpark = worker_hook;
  }
  if (lifo_off) options.lifo_slot = false;
  Result r = weft::run(fn(), options);
  std::printf("peer=%s workload=%s workers=%u seconds=%.6f ops_per_sec=%.1f%s%s\n",
              eager_tasks ? "weft-eager" : "weft", workload.c_str(), workers, r.seconds,
              r.ops / r.seconds, r.extra.empty() ? "" : " ", r.extra.c_str());
  return 0;
}

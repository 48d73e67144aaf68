// weft's flagship demo: asyncio programs, line for line, then the same model
// running on every core.
//
// Part 1 runs the four programs of the asyncio behaviour catalogue (PROG-A to
// PROG-D) with one worker, where weft's order is exactly asyncio's. Part 2
// runs a CPU-bound fan-out (64 tasks) with one worker and with every core,
// and prints the speed-up.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// PROG-A: two tasks interleaving through sleep(1) and sleep(0).
weft::Coro<void> task1() {
  for (int i = 0; i < 2; ++i) {
    std::puts("Task 1");
    co_await weft::sleep(1s);
  }
}
weft::Coro<void> task2() {
  for (int i = 0; i < 3; ++i) {
    std::puts("Task 2");
    co_await weft::sleep(0s);
  }
}
weft::Coro<void> prog_a() {
  auto one = weft::create_task(task1());
  auto two = weft::create_task(task2());
  co_await one;
  co_await two;
  std::puts("done");
}

// PROG-B: gather returns results in argument order, not completion order.
weft::Coro<std::string> task_a() {
  std::puts("A start");
  co_await weft::sleep(1s);
  std::puts("A end");
  co_return "A";
}
weft::Coro<std::string> task_b() {
  std::puts("B start");
  co_await weft::sleep(500ms);
  std::puts("B end");
  co_return "B";
}
weft::Coro<void> prog_b() {
  auto [a, b] = co_await weft::gather(task_a(), task_b());
  std::printf("['%s', '%s']\n", a.c_str(), b.c_str());
}

// PROG-C: strict round-robin through sleep(0).
weft::Coro<void> worker(int n) {
  for (int i = 0; i < 3; ++i) {
    std::printf("Worker %d: step %d\n", n, i);
    co_await weft::sleep(0s);
  }
}
weft::Coro<void> prog_c() { co_await weft::gather(worker(1), worker(2), worker(3)); }

// PROG-D: call_soon runs first, call_later after its delay.
weft::Coro<void> prog_d() {
  weft::EventLoop& loop = weft::get_running_loop();
  loop.call_soon([] { std::puts("Callback executed immediately"); });
  loop.call_later(2s, [] { std::puts("Callback executed after 2 seconds"); });
  co_await weft::sleep(3s);
}

// Part 2: real work, spread over the workers by stealing.
std::uint64_t mix(std::uint64_t x, long iterations) {
  for (long i = 0; i < iterations; ++i) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x += static_cast<std::uint64_t>(i);
  }
  return x;
}
weft::Coro<std::uint64_t> crunch(std::uint64_t seed) { co_return mix(seed, 4'000'000); }
weft::Coro<std::uint64_t> fan_out() {
  std::vector<weft::Task<std::uint64_t>> tasks;
  for (std::uint64_t i = 0; i < 64; ++i) tasks.push_back(weft::create_task(crunch(i + 1)));
  std::uint64_t sum = 0;
  for (auto& t : tasks) sum += co_await t;
  co_return sum;
}
double timed_fan_out(unsigned workers, std::uint64_t& checksum) {
  auto start = std::chrono::steady_clock::now();
  checksum = weft::run(fan_out(), {.workers = workers});
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  const weft::RunOptions one{.workers = 1};
  std::puts("== PROG-A: tasks interleave at sleep(0) and sleep(1) ==");
  weft::run(prog_a(), one);
  std::puts("== PROG-B: gather keeps argument order ==");
  weft::run(prog_b(), one);
  std::puts("== PROG-C: round-robin ==");
  weft::run(prog_c(), one);
  std::puts("== PROG-D: call_soon and call_later ==");
  weft::run(prog_d(), one);

  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::printf("== Parallel speed-up: 64 CPU-bound tasks, 1 worker vs %u ==\n", cores);
  std::uint64_t c1 = 0, cn = 0;
  double t1 = timed_fan_out(1, c1);
  double tn = timed_fan_out(cores, cn);
  std::printf("1 worker: %.3f s   %u workers: %.3f s   speed-up: %.2fx   (checksums %s)\n", t1,
              cores, tn, t1 / tn, c1 == cn ? "match" : "DIFFER");
  return c1 == cn ? 0 : 1;
}

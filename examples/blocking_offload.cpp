// Offloading without stalling the loops (issue 5): a ticking timer keeps its
// rhythm while a slow blocking call runs on the blocking pool (to_thread) and
// a CPU-heavy oneTBB parallel_reduce runs in a TbbExecutor arena.
//
//   blocking_offload [workers]
#include <weft/weft.hpp>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Ticks every 10 ms until `done`; returns the worst lateness of a tick.
weft::Coro<double> ticker(std::atomic<bool>* done, int* ticks) {
  double worst_ms = 0;
  while (!done->load()) {
    auto start = Clock::now();
    co_await weft::sleep(10ms);
    double late = std::chrono::duration<double, std::milli>(Clock::now() - start - 10ms).count();
    worst_ms = std::max(worst_ms, late);
    ++*ticks;
  }
  co_return worst_ms;
}

// A blocking call (a legacy client library, a file system walk, ...).
std::string slow_lookup(int key) {
  std::this_thread::sleep_for(300ms);
  return "value-" + std::to_string(key);
}

weft::Coro<int> main_task() {
  std::atomic<bool> done{false};
  int ticks = 0;
  auto tick_task = weft::create_task(ticker(&done, &ticks));

  auto start = Clock::now();
  // Blocking work goes to the elastic blocking pool...
  auto lookup = weft::create_task(weft::to_thread(slow_lookup, 42));
  // ...CPU-heavy parallel work to a oneTBB arena that shares no threads with the workers.
  weft::TbbExecutor cpu;
  double sum = co_await weft::get_running_loop().run_in_executor(&cpu, [] {
    return oneapi::tbb::parallel_reduce(
        oneapi::tbb::blocked_range<long>(1, 20'000'000), 0.0,
        [](const oneapi::tbb::blocked_range<long>& r, double acc) {
          for (long i = r.begin(); i < r.end(); ++i) acc += std::sqrt(static_cast<double>(i));
          return acc;
        },
        [](double a, double b) { return a + b; });
  });
  std::string value = co_await lookup;
  double elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

  done = true;
  double worst_ms = co_await tick_task;
  std::printf("blocking call returned %s; parallel sum = %.6g\n", value.c_str(), sum);
  std::printf("both finished in %.0f ms; the 10 ms timer ticked %d times, worst lateness %.1f ms\n",
              elapsed_ms, ticks, worst_ms);
  bool kept_rhythm = worst_ms < 50.0;
  std::printf("timer kept its rhythm: %s\n",
              kept_rhythm ? "yes" : "no (the machine is overloaded)");
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned workers = argc > 1 ? static_cast<unsigned>(std::strtoul(argv[1], nullptr, 10)) : 0;
  return weft::run(main_task(), {.workers = workers});
}

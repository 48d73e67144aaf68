// Micro benchmarks of the offload executors (issue 5): the submit -> run ->
// signal-back round trip on an idle ThreadPoolExecutor thread against a plain
// fixed std::thread pool (mutex + condition variable + deque), and a 1M-element
// oneTBB parallel_reduce offloaded to a TbbExecutor against the same call made
// directly. In the RoundTrip benchmarks the submitter waits with
// std::atomic::wait (a futex on Linux once its short spin is over), so they
// include one kernel wake-up of the submitter whatever the pool does. The
// ToThread benchmarks measure what users write, `co_await weft::to_thread([]
// {})` in a loop, from a task on a standalone loop and on a runtime: both
// hand-offs (submit -> pool thread, completion -> the awaiting loop, which
// spins briefly before parking when an offload is due) included. Figures are
// per round trip (per_trip for the ToThread ones).
#include <benchmark/benchmark.h>
#include <weft/offload.hpp>
#include <weft/runtime.hpp>
#include <weft/tbb_executor.hpp>
#include <weft/thread_pool_executor.hpp>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

namespace {

/// The baseline: a fixed set of threads around one locked deque.
class FixedThreadPool {
 public:
  explicit FixedThreadPool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~FixedThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      std::function<void()> fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

/// Submits a function that signals back, and waits for the signal.
template <class Pool>
void round_trip(Pool& pool) {
  std::atomic<int> done{0};
  pool.submit([&done] {
    done.store(1, std::memory_order_release);
    done.notify_one();
  });
  done.wait(0, std::memory_order_acquire);
}

void BM_ThreadPoolExecutor_RoundTrip(benchmark::State& state) {
  weft::ThreadPoolExecutor pool;
  round_trip(pool);  // start the one thread the loop below reuses
  for (auto _ : state) round_trip(pool);
  state.counters["threads"] = static_cast<double>(pool.stats().spawned_total);
}
BENCHMARK(BM_ThreadPoolExecutor_RoundTrip)->UseRealTime();

void BM_FixedThreadPool_RoundTrip(benchmark::State& state) {
  FixedThreadPool pool(static_cast<unsigned>(state.range(0)));
  for (auto _ : state) round_trip(pool);
}
BENCHMARK(BM_FixedThreadPool_RoundTrip)->Arg(1)->Arg(4)->UseRealTime();

void BM_TbbExecutor_RoundTrip(benchmark::State& state) {
  weft::TbbExecutor cpu(static_cast<int>(state.range(0)));
  for (auto _ : state) round_trip(cpu);
}
BENCHMARK(BM_TbbExecutor_RoundTrip)->Arg(1)->Arg(2)->UseRealTime();

constexpr int kTripsPerRound = 1000;

weft::Coro<void> to_thread_trips() {
  for (int i = 0; i < kTripsPerRound; ++i) co_await weft::to_thread([] {});
}

void report_per_trip(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations() * kTripsPerRound);
  state.counters["per_trip"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kTripsPerRound),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_ToThread_StandaloneLoop(benchmark::State& state) {
  weft::EventLoop loop;
  loop.run_until_complete(to_thread_trips());  // start the pool thread
  for (auto _ : state) loop.run_until_complete(to_thread_trips());
  report_per_trip(state);
}
BENCHMARK(BM_ToThread_StandaloneLoop)->UseRealTime();

void BM_ToThread_Runtime(benchmark::State& state) {
  weft::Runtime rt({.workers = static_cast<unsigned>(state.range(0))});
  rt.block_on(to_thread_trips());
  for (auto _ : state) rt.block_on(to_thread_trips());
  report_per_trip(state);
}
BENCHMARK(BM_ToThread_Runtime)->Arg(1)->Arg(2)->UseRealTime();

constexpr long kReduceElements = 1'000'000;

const std::vector<long>& reduce_input() {
  static const std::vector<long> data = [] {
    std::vector<long> v(kReduceElements);
    std::iota(v.begin(), v.end(), 0L);
    return v;
  }();
  return data;
}

long parallel_sum(const std::vector<long>& data) {
  return tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, data.size()), 0L,
      [&](const tbb::blocked_range<std::size_t>& r, long acc) {
        for (std::size_t i = r.begin(); i != r.end(); ++i) acc += data[i];
        return acc;
      },
      std::plus<>());
}

void BM_TbbExecutor_ParallelReduceOffload(benchmark::State& state) {
  const auto& data = reduce_input();
  weft::TbbExecutor cpu;
  for (auto _ : state) {
    std::atomic<int> done{0};
    long sum = 0;
    cpu.submit([&] {
      sum = parallel_sum(data);
      done.store(1, std::memory_order_release);
      done.notify_one();
    });
    done.wait(0, std::memory_order_acquire);
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kReduceElements);
}
BENCHMARK(BM_TbbExecutor_ParallelReduceOffload)->UseRealTime();

void BM_TbbParallelReduce_Direct(benchmark::State& state) {
  const auto& data = reduce_input();
  for (auto _ : state) benchmark::DoNotOptimize(parallel_sum(data));
  state.SetItemsProcessed(state.iterations() * kReduceElements);
}
BENCHMARK(BM_TbbParallelReduce_Direct)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

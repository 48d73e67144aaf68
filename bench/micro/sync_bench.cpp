// Google Benchmarks of the sync primitives (issue 4): uncontended Lock
// acquire+release inside one task, a Lock contended across 2 workers, Event
// fan-out to 10k waiters, Queue SPSC and MPMC throughput. Peers (Tokio mpsc,
// tokio::sync::Mutex) live in the benchmark issue's peer suite. Multi-worker
// benchmarks report wall time (the work runs on the workers, not this thread).
#include <benchmark/benchmark.h>
#include <weft/weft.hpp>

#include <vector>

namespace {

weft::Coro<void> lock_uncontended(benchmark::State* state) {
  weft::Lock lock;
  for (auto _ : *state) {
    co_await lock.acquire();
    lock.release();
  }
  benchmark::DoNotOptimize(lock.locked());
}

void BM_LockUncontendedAcquireRelease(benchmark::State& state) {
  weft::run(lock_uncontended(&state), {.workers = 1});
}
BENCHMARK(BM_LockUncontendedAcquireRelease);

void BM_SemaphoreUncontendedAcquireRelease(benchmark::State& state) {
  weft::run(
      [](benchmark::State* st) -> weft::Coro<void> {
        weft::Semaphore sem(4);
        for (auto _ : *st) {
          co_await sem.acquire();
          sem.release();
        }
      }(&state),
      {.workers = 1});
}
BENCHMARK(BM_SemaphoreUncontendedAcquireRelease);

constexpr long kContendedOps = 20000;

weft::Coro<void> contend(weft::Lock* lock, long* counter, long n) {
  for (long i = 0; i < n; ++i) {
    co_await lock->acquire();
    ++*counter;
    lock->release();
    if (i % 16 == 0) co_await weft::sleep(std::chrono::nanoseconds(0));
  }
}

weft::Coro<void> contended_round(long per_task) {
  weft::Lock lock;
  long counter = 0;
  auto a = weft::create_task(contend(&lock, &counter, per_task));
  auto b = weft::create_task(contend(&lock, &counter, per_task));
  co_await a;
  co_await b;
  benchmark::DoNotOptimize(counter);
}

void BM_LockContendedTwoWorkers(benchmark::State& state) {
  weft::Runtime rt({.workers = 2});
  for (auto _ : state) rt.block_on(contended_round(kContendedOps));
  state.SetItemsProcessed(state.iterations() * 2 * kContendedOps);
}
BENCHMARK(BM_LockContendedTwoWorkers)->Unit(benchmark::kMillisecond)->UseRealTime();

weft::Coro<void> fan_out(int waiters) {
  weft::Event ev;
  std::vector<weft::Task<void>> tasks;
  tasks.reserve(waiters);
  for (int i = 0; i < waiters; ++i) tasks.push_back(weft::create_task(ev.wait()));
  co_await weft::sleep(std::chrono::nanoseconds(0));  // let them reach wait()
  ev.set();
  for (auto& t : tasks) co_await t;
}

void BM_EventFanOut10k(benchmark::State& state) {
  weft::Runtime rt({.workers = static_cast<unsigned>(state.range(0))});
  for (auto _ : state) rt.block_on(fan_out(10000));
  state.SetItemsProcessed(state.iterations() * 10000);
}
BENCHMARK(BM_EventFanOut10k)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

constexpr int kItems = 100000;

weft::Coro<void> produce(weft::Queue<long>* q, int n) {
  for (int i = 0; i < n; ++i) co_await q->put(i);
}

weft::Coro<long> consume(weft::Queue<long>* q, int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await q->get();
  co_return sum;
}

weft::Coro<void> queue_round(int producers, int consumers) {
  weft::Queue<long> q(1024);
  std::vector<weft::Task<void>> ps;
  std::vector<weft::Task<long>> cs;
  for (int i = 0; i < producers; ++i)
    ps.push_back(weft::create_task(produce(&q, kItems / producers)));
  for (int i = 0; i < consumers; ++i)
    cs.push_back(weft::create_task(consume(&q, kItems / consumers)));
  long total = 0;
  for (auto& p : ps) co_await p;
  for (auto& c : cs) total += co_await c;
  benchmark::DoNotOptimize(total);
}

void BM_QueueSpsc(benchmark::State& state) {
  weft::Runtime rt({.workers = static_cast<unsigned>(state.range(0))});
  for (auto _ : state) rt.block_on(queue_round(1, 1));
  state.SetItemsProcessed(state.iterations() * kItems);
}
BENCHMARK(BM_QueueSpsc)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_QueueMpmc4x4(benchmark::State& state) {
  weft::Runtime rt({.workers = static_cast<unsigned>(state.range(0))});
  for (auto _ : state) rt.block_on(queue_round(4, 4));
  state.SetItemsProcessed(state.iterations() * kItems);
}
BENCHMARK(BM_QueueMpmc4x4)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

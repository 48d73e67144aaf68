// Micro benchmarks of the executor core (issue 6): spawn, resume, futures
// same-thread and cross-thread, timers, the local run queue, the remote inbox.
// Worker-count sweeps use Arg(workers); figures are per operation.
#include <benchmark/benchmark.h>
#include <weft/weft.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "local_queue.hpp"

using namespace std::chrono_literals;

namespace {

weft::Coro<void> empty_task() { co_return; }

// create_task + completion of an empty task, batched 1000 per round.
void BM_Spawn(benchmark::State& state) {
  unsigned workers = static_cast<unsigned>(state.range(0));
  weft::Runtime rt({.workers = workers});
  for (auto _ : state) {
    rt.block_on([]() -> weft::Coro<void> {
      std::vector<weft::Task<void>> tasks;
      tasks.reserve(1000);
      for (int i = 0; i < 1000; ++i) tasks.push_back(weft::create_task(empty_task()));
      for (auto& t : tasks) co_await t;
    }());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Spawn)->Arg(1)->Arg(2)->Arg(4)->UseRealTime();

// One task step resumed through sleep(0): the cost of a yield.
void BM_Yield(benchmark::State& state) {
  weft::Runtime rt({.workers = static_cast<unsigned>(state.range(0))});
  for (auto _ : state) {
    rt.block_on([]() -> weft::Coro<void> {
      for (int i = 0; i < 1000; ++i) co_await weft::sleep(0s);
    }());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_Yield)->Arg(1)->Arg(2)->UseRealTime();

// Awaiting a Coro inline (symmetric transfer, no scheduling).
weft::Coro<int> leaf(int v) { co_return v + 1; }
void BM_CoroInlineAwait(benchmark::State& state) {
  weft::EventLoop loop;
  for (auto _ : state) {
    int v = loop.run_until_complete([]() -> weft::Coro<int> {
      int x = 0;
      for (int i = 0; i < 1000; ++i) x = co_await leaf(x);
      co_return x;
    }());
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_CoroInlineAwait);

// Future set_result + await within one loop (the waiter is woken through the ready queue).
void BM_FutureSameThread(benchmark::State& state) {
  weft::EventLoop loop;
  for (auto _ : state) {
    loop.run_until_complete([]() -> weft::Coro<void> {
      for (int i = 0; i < 1000; ++i) {
        weft::Future<int> f;
        auto setter = weft::create_task([](weft::Future<int> f) -> weft::Coro<void> {
          f.set_result(1);
          co_return;
        }(f));
        benchmark::DoNotOptimize(co_await f);
      }
    }());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_FutureSameThread);

// Future completed from a foreign thread: the cross-thread wake-up path.
void BM_FutureCrossThread(benchmark::State& state) {
  weft::Runtime rt({.workers = 1});
  std::atomic<weft::detail::FutureState<int>*> slot{nullptr};
  std::atomic<bool> stop{false};
  std::thread setter([&] {
    while (!stop.load(std::memory_order_acquire)) {
      if (auto* s = slot.exchange(nullptr, std::memory_order_acq_rel)) {
        s->set_value(1);
        s->release();
      }
    }
  });
  for (auto _ : state) {
    rt.block_on([](std::atomic<weft::detail::FutureState<int>*>* slot) -> weft::Coro<void> {
      for (int i = 0; i < 100; ++i) {
        weft::Future<int> f;
        weft::detail::FutureAccess::state(f)->add_ref();
        slot->store(weft::detail::FutureAccess::state(f), std::memory_order_release);
        benchmark::DoNotOptimize(co_await f);
      }
    }(&slot));
  }
  stop.store(true, std::memory_order_release);
  setter.join();
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_FutureCrossThread)->UseRealTime();

// call_later + cancel: timer insert and O(1) cancel.
void BM_TimerInsertCancel(benchmark::State& state) {
  weft::EventLoop loop;
  for (auto _ : state) {
    auto h = loop.call_later(10s, [] {});
    h.cancel();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerInsertCancel);

// Timers that fire: call_later(0) batches through one iteration.
void BM_TimerFire(benchmark::State& state) {
  weft::EventLoop loop;
  for (auto _ : state) {
    loop.run_until_complete([]() -> weft::Coro<void> {
      auto& l = weft::get_running_loop();
      int fired = 0;
      for (int i = 0; i < 1000; ++i) l.call_later(0s, [&fired] { ++fired; });
      while (fired < 1000) co_await weft::sleep(0s);
    }());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_TimerFire);

// Local run queue push + pop by its owner.
void BM_LocalQueuePushPop(benchmark::State& state) {
  weft::detail::LocalQueue q(256);
  auto* fake = reinterpret_cast<weft::detail::TaskCore*>(0x1000);
  for (auto _ : state) {
    q.push_back(fake, [](weft::detail::TaskCore*) {});
    benchmark::DoNotOptimize(q.pop());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LocalQueuePushPop);

// Steal half of a 256-entry queue into another.
void BM_LocalQueueSteal(benchmark::State& state) {
  weft::detail::LocalQueue victim(256), thief(256);
  auto* fake = reinterpret_cast<weft::detail::TaskCore*>(0x1000);
  for (auto _ : state) {
    state.PauseTiming();
    for (int i = 0; i < 128; ++i) victim.push_back(fake, [](weft::detail::TaskCore*) {});
    while (thief.pop()) {
    }
    state.ResumeTiming();
    std::uint32_t n = 0;
    benchmark::DoNotOptimize(victim.steal_into(thief, n));
    state.PauseTiming();
    while (victim.pop()) {
    }
    state.ResumeTiming();
  }
}
BENCHMARK(BM_LocalQueueSteal);

// call_soon_threadsafe from a foreign thread through the remote inbox.
void BM_RemoteInbox(benchmark::State& state) {
  weft::Runtime rt({.workers = 1});
  weft::EventLoop& loop = rt.loop(0);
  for (auto _ : state) {
    std::atomic<int> ran{0};
    for (int i = 0; i < 1000; ++i)
      loop.call_soon_threadsafe([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
    while (ran.load(std::memory_order_relaxed) < 1000) std::this_thread::yield();
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_RemoteInbox)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// The LIFO slot (RunOptions::lifo_slot, docs/scheduling-options.md): with
// several workers, the task a running task wakes or creates last runs right
// after that step, at most 3 slot steps in a row; off, or at one worker, the
// order is FIFO.
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "weft_test.hpp"

namespace {

using namespace std::chrono_literals;
using weft::testing::scaled;

struct Order {
  std::mutex mu;
  std::vector<int> seen;
  void add(int v) {
    std::lock_guard lock(mu);
    seen.push_back(v);
  }
};

/// Keeps one worker busy (a blocking pinned task) so that the order on the
/// other one is deterministic: nobody steals from it.
weft::Coro<void> hold_worker(std::atomic<bool>* holding, std::atomic<bool>* release) {
  holding->store(true);
  while (!release->load()) std::this_thread::sleep_for(100us);
  co_return;
}

template <class T>
weft::Coro<T> drive(weft::Coro<T> body) {
  co_return co_await weft::create_task(std::move(body));
}

/// Runs `body` on worker 0 of a two-worker runtime whose worker 1 is held.
/// The body is created by a task pinned to worker 0: neither it nor the wait
/// for it goes through the injector, which could hand it to the held worker
/// (a worker running a loop callback from inside its park counts as idle).
template <class T>
T on_one_free_worker(bool lifo, weft::Coro<T> body) {
  weft::Runtime rt({.workers = 2, .lifo_slot = lifo});
  std::atomic<bool> holding{false}, release{false};
  weft::TaskOptions pinned{.name = {}, .pinned = true};
  auto held = rt.loop(1).create_task(hold_worker(&holding, &release), pinned);
  while (!holding.load()) std::this_thread::sleep_for(100us);
  auto driver = rt.loop(0).create_task(drive(std::move(body)), pinned);
  while (!driver.done()) std::this_thread::sleep_for(100us);
  T out = driver.result();
  release.store(true);
  while (!held.done()) std::this_thread::sleep_for(100us);
  return out;
}

weft::Coro<void> record(Order* order, int v) {
  order->add(v);
  co_return;
}

weft::Coro<std::vector<int>> create_three_then_yield() {
  Order order;
  auto c1 = weft::create_task(record(&order, 1));
  auto c2 = weft::create_task(record(&order, 2));
  auto c3 = weft::create_task(record(&order, 3));
  co_await weft::sleep(0s);
  order.add(0);  // this task's own next step
  co_await c1;
  co_await c2;
  co_await c3;
  co_return order.seen;
}

TEST(LifoSlot, TaskCreatedLastRunsRightAfterTheCreatorsStep) {
  EXPECT_EQ(on_one_free_worker(true, create_three_then_yield()), (std::vector<int>{3, 1, 2, 0}));
}

TEST(LifoSlot, OffKeepsTheRunQueueFifo) {
  EXPECT_EQ(on_one_free_worker(false, create_three_then_yield()), (std::vector<int>{1, 2, 3, 0}));
}

/// Each link records itself and creates the next: every step fills the slot.
weft::Coro<void> link(Order* order, int v, int last) {
  order->add(v);
  if (v < last) weft::create_task(link(order, v + 1, last));
  co_return;
}

weft::Coro<std::vector<int>> chain_next_to_a_queued_task() {
  Order order;
  auto queued = weft::create_task(record(&order, 100));
  weft::create_task(link(&order, 1, 6));  // displaces `queued` to the run queue
  while (true) {
    co_await weft::sleep(1ms);
    std::lock_guard lock(order.mu);
    if (order.seen.size() == 7) break;
  }
  co_await queued;
  co_return order.seen;
}

TEST(LifoSlot, AtMostThreeSlotStepsInARowThenTheQueueGoesFirst) {
  // Links 1-3 run from the slot after the creator's step; link 4 takes its
  // turn behind the task queued before it, then 4-6 run from the slot again.
  EXPECT_EQ(on_one_free_worker(true, chain_next_to_a_queued_task()),
            (std::vector<int>{1, 2, 3, 100, 4, 5, 6}));
}

// --- everything still completes, with the slot on and off, at every worker count

class LifoSlotWorkers : public ::testing::TestWithParam<unsigned> {};

weft::Coro<void> ponger(weft::Queue<int>* in, weft::Queue<int>* out, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    int v = co_await in->get();
    co_await out->put(v + 1);
  }
}

weft::Coro<long> ping_pong(int rounds) {
  weft::Queue<int> to_pong(1), to_ping(1);
  auto pong = weft::create_task(ponger(&to_pong, &to_ping, rounds));
  long sum = 0;
  for (int i = 0; i < rounds; ++i) {
    co_await to_pong.put(i);
    int v = co_await to_ping.get();
    sum += v;
  }
  co_await pong;
  co_return sum;
}

weft::Coro<long> tree(int depth) {
  if (depth == 0) co_return 1;
  std::vector<weft::Task<long>> children;
  for (int i = 0; i < 4; ++i) children.push_back(weft::create_task(tree(depth - 1)));
  long sum = 0;
  for (auto& c : children) sum += co_await c;
  co_return sum;
}

TEST_P(LifoSlotWorkers, PingPongAndForkJoinComplete) {
  const int rounds = static_cast<int>(scaled(20000));
  const long expected_pings = static_cast<long>(rounds) * (rounds + 1) / 2;
  for (bool lifo : {true, false}) {
    weft::Runtime rt({.workers = GetParam(), .lifo_slot = lifo});
    EXPECT_EQ(rt.block_on(ping_pong(rounds)), expected_pings) << "lifo " << lifo;
    EXPECT_EQ(rt.block_on(tree(6)), 4096) << "lifo " << lifo;
  }
}

INSTANTIATE_TEST_SUITE_P(Workers, LifoSlotWorkers, ::testing::Values(1u, 2u, 4u, 8u),
                         weft::testing::worker_name);

}  // namespace

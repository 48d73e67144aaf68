// Eager tasks (asyncio 3.12's eager_task_factory, 3.14's eager_start):
// TaskOptions{.eager = true} and RunOptions{.eager_tasks = true}.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

class EagerW : public weft::testing::WorkersTest {};

weft::TaskOptions eager() {
  weft::TaskOptions o;
  o.eager = true;
  return o;
}

weft::Coro<int> no_suspension(std::vector<std::string>* log) {
  log->push_back("body");
  co_return 7;
}

WEFT_TEST_P(EagerW, ATaskThatNeverSuspendsIsDoneWhenCreateTaskReturns) {
  std::vector<std::string> log;
  auto t = weft::create_task(no_suspension(&log), eager());
  log.push_back("after create_task");
  CO_ASSERT_TRUE(t.done());
  CO_ASSERT_EQ(t.result(), 7);
  CO_ASSERT_EQ(log.size(), 2u);
  CO_ASSERT_EQ(log[0], "body");
  CO_ASSERT_EQ(co_await t, 7);
}

weft::Coro<int> suspends_once(std::vector<std::string>* log, weft::Future<int> gate) {
  log->push_back("first step");
  int v = co_await gate;
  log->push_back("second step");
  co_return v + 1;
}

WEFT_TEST_P(EagerW, TheFirstStepRunsInsideCreateTaskTheRestIsScheduled) {
  std::vector<std::string> log;
  weft::Future<int> gate;
  auto t = weft::create_task(suspends_once(&log, gate), eager());
  log.push_back("creator");
  CO_ASSERT_TRUE(!t.done());
  gate.set_result(41);
  CO_ASSERT_EQ(co_await t, 42);
  CO_ASSERT_EQ(log.size(), 3u);
  CO_ASSERT_EQ(log[0], "first step");
  CO_ASSERT_EQ(log[1], "creator");
  CO_ASSERT_EQ(log[2], "second step");
}

weft::Coro<bool> sees_itself(weft::TaskRef* seen) {
  *seen = weft::current_task();
  co_return true;
}

WEFT_TEST_P(EagerW, TheEagerStepIsTheNewTaskAndTheCreatorComesBack) {
  weft::TaskRef me = weft::current_task();
  weft::TaskRef seen;
  auto t = weft::create_task(sees_itself(&seen), eager());
  CO_ASSERT_TRUE(seen == weft::TaskRef(t));
  CO_ASSERT_TRUE(weft::current_task() == me);
  co_await weft::sleep(0ms);
  CO_ASSERT_TRUE(weft::current_task() == me);
}

weft::Coro<int> throws_at_once() {
  throw std::runtime_error("boom");
  co_return 0;
}

WEFT_TEST_P(EagerW, AnExceptionInTheEagerStepIsTheTasksNotCreateTasks) {
  auto t = weft::create_task(throws_at_once(), eager());
  CO_ASSERT_TRUE(t.done());
  bool raised = false;
  try {
    (void)co_await t;
  } catch (const std::runtime_error& e) {
    raised = std::string(e.what()) == "boom";
  }
  CO_ASSERT_TRUE(raised);
}

weft::ContextVar<int> request_id("request_id", 0);

weft::Coro<int> read_context() { co_return request_id.get(); }

WEFT_TEST_P(EagerW, TheEagerStepSeesTheCreatorsContext) {
  request_id.set(5);
  auto t = weft::create_task(read_context(), eager());
  CO_ASSERT_EQ(t.result(), 5);
}

WEFT_TEST_P(EagerW, CancellingAnEagerTaskThatSuspendedCancelsItsAwait) {
  std::vector<std::string> log;
  weft::Future<int> gate;
  auto t = weft::create_task(suspends_once(&log, gate), eager());
  CO_ASSERT_TRUE(t.cancel());
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  CO_ASSERT_TRUE(cancelled && t.cancelled() && gate.cancelled());
}

weft::Coro<long> fib(int n) {
  if (n < 2) co_return n;
  weft::TaskOptions o;
  o.eager = true;
  auto a = weft::create_task(fib(n - 1), o);
  auto b = weft::create_task(fib(n - 2), o);
  long x = co_await a;
  long y = co_await b;
  co_return x + y;
}

WEFT_TEST_P(EagerW, NestedEagerTasksComputeFib) {
  long v = co_await fib(15);
  CO_ASSERT_EQ(v, 610);
}

weft::Coro<long> leaf_after_yield(long v) {
  co_await weft::sleep(0ms);
  co_return v;
}

weft::Coro<long> mixed_tree(int depth, long base) {
  if (depth == 0) co_return co_await leaf_after_yield(base);
  std::vector<weft::Task<long>> children;
  for (long i = 0; i < 4; ++i) {
    weft::TaskOptions o;
    o.eager = (i % 2 == 0);
    children.push_back(weft::create_task(mixed_tree(depth - 1, base * 4 + i), o));
  }
  long sum = 0;
  for (auto& c : children) sum += co_await c;
  co_return sum;
}

WEFT_TEST_P(EagerW, EagerAndLazyChildrenMixedUnderStealing) {
  // Leaves are 4^5 consecutive numbers starting at 0.
  long leaves = 1024;
  long sum = co_await mixed_tree(5, 0);
  CO_ASSERT_EQ(sum, leaves * (leaves - 1) / 2);
}

weft::Coro<void> chain_link(long left, std::atomic<long>* reached) {
  reached->fetch_add(1);
  if (left == 0) co_return;
  weft::TaskOptions o;
  o.eager = true;
  weft::create_task(chain_link(left - 1, reached), o);
}

WEFT_TEST_P(EagerW, ALongChainOfEagerTasksDoesNotGrowTheStackWithoutBound) {
  // Each task creates the next and returns: past the eager depth limit the
  // next one starts lazily, so 200,000 links never overflow the stack.
  const long links = weft::testing::scaled(200'000);
  std::atomic<long> reached{0};
  weft::create_task(chain_link(links, &reached), eager());
  while (reached.load() != links + 1) co_await weft::sleep(1ms);
}

INSTANTIATE_TEST_SUITE_P(Workers, EagerW, weft::testing::kWorkerCounts, weft::testing::worker_name);

// --------------------------------------------------------- the runtime default

weft::Coro<int> record_started(std::atomic<bool>* started) {
  started->store(true);
  co_return 1;
}

weft::Coro<void> default_is_eager() {
  std::atomic<bool> started{false};
  auto t = weft::create_task(record_started(&started));
  EXPECT_TRUE(started.load());
  EXPECT_TRUE(t.done());
  std::atomic<bool> lazy_started{false};
  weft::TaskOptions lazy;
  lazy.eager = false;
  auto l = weft::create_task(record_started(&lazy_started), lazy);
  EXPECT_FALSE(lazy_started.load());  // opted out: starts when scheduled
  co_await l;
  EXPECT_TRUE(lazy_started.load());
}

TEST(Eager, RunOptionsEagerTasksMakesEveryTaskEagerUnlessItOptsOut) {
  weft::run(default_is_eager(), {.workers = 2, .eager_tasks = true});
}

weft::Coro<int> await_task(weft::Task<int> t) { co_return co_await t; }

TEST(Eager, SpawnFromAForeignThreadIsQueuedAndRunsOnAWorker) {
  weft::Runtime rt({.workers = 2, .eager_tasks = true});
  std::atomic<bool> started{false};
  weft::TaskOptions o;
  o.eager = true;
  auto t = rt.spawn(record_started(&started), o);  // not on a loop thread: queued
  EXPECT_EQ(rt.block_on(await_task(t)), 1);
  EXPECT_TRUE(started.load());
}

}  // namespace

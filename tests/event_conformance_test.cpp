// Event conformance: the EVT behaviours of docs/asyncio-behaviours.md
// (issue 4). WEFT_TEST bodies run at one worker (exact asyncio order); EventW
// tests run at 1, 2 and 8 workers and check everything but order.
#include <atomic>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::ended_cancelled;
using weft::testing::eventually;
using weft::testing::ticks;

namespace {

weft::Coro<void> wait_and_record(weft::Event* ev, std::vector<int>* out, int id) {
  co_await ev->wait();
  out->push_back(id);
}

weft::Coro<void> wait_and_count(weft::Event* ev, std::atomic<int>* count) {
  co_await ev->wait();
  count->fetch_add(1);
}

}  // namespace

class EventW : public weft::testing::WorkersTest {};

WEFT_TEST_P(EventW, Evt01SetClearAndWaitOnSetEvent) {
  weft::Event ev;
  CO_ASSERT_TRUE(!ev.is_set());
  ev.set();
  CO_ASSERT_TRUE(ev.is_set());
  ev.set();  // idempotent
  CO_ASSERT_TRUE(ev.is_set());
  co_await ev.wait();  // returns at once
  ev.clear();
  CO_ASSERT_TRUE(!ev.is_set());
  ev.set();
  co_await ev.wait();
}

WEFT_TEST(Event, Evt01WaitOnSetEventDoesNotYield) {
  weft::Event ev;
  ev.set();
  bool other_ran = false;
  auto t = weft::create_task([](bool* flag) -> weft::Coro<void> {
    *flag = true;
    co_return;
  }(&other_ran));
  co_await ev.wait();
  CO_ASSERT_TRUE(!other_ran);
  co_await t;
}

WEFT_TEST(Event, Evt02WakeUpOrder) {
  weft::Event ev;
  std::vector<int> result;
  auto t1 = weft::create_task(wait_and_record(&ev, &result, 1));
  auto t2 = weft::create_task(wait_and_record(&ev, &result, 2));
  co_await ticks();
  CO_ASSERT_TRUE(result.empty());
  auto t3 = weft::create_task(wait_and_record(&ev, &result, 3));
  ev.set();
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{3, 1, 2}));
  CO_ASSERT_TRUE(t1.done() && t2.done() && t3.done());
}

WEFT_TEST_P(EventW, Evt02SetReleasesEveryWaiter) {
  weft::Event ev;
  std::atomic<int> count{0};
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 100; ++i) tasks.push_back(weft::create_task(wait_and_count(&ev, &count)));
  co_await weft::sleep(1ms);
  CO_ASSERT_EQ(count.load(), 0);
  ev.set();
  for (auto& t : tasks) co_await t;
  CO_ASSERT_EQ(count.load(), 100);
}

WEFT_TEST(Event, Evt03ReleasedWaiterFinishesDespiteClear) {
  weft::Event ev;
  std::vector<int> result;
  auto t = weft::create_task(wait_and_record(&ev, &result, 1));
  co_await ticks();
  ev.set();
  ev.clear();
  ev.set();
  ev.clear();
  co_await ticks();
  CO_ASSERT_TRUE(t.done());
  CO_ASSERT_TRUE(result == (std::vector<int>{1}));
  CO_ASSERT_TRUE(!ev.is_set());
}

WEFT_TEST_P(EventW, Evt03ClearAfterSetDoesNotReblockReleasedWaiters) {
  weft::Event ev;
  std::atomic<int> count{0};
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 20; ++i) tasks.push_back(weft::create_task(wait_and_count(&ev, &count)));
  co_await weft::sleep(1ms);
  ev.set();
  ev.clear();
  // Every waiter linked when set() ran is released despite the clear(); a
  // task slow enough not to have reached wait() yet blocks until the next set().
  co_await weft::sleep(1ms);
  CO_ASSERT_TRUE(!ev.is_set());
  ev.set();
  for (auto& t : tasks) co_await t;
  CO_ASSERT_EQ(count.load(), 20);
}

WEFT_TEST_P(EventW, Evt04CancelledWaitIsRemoved) {
  weft::Event ev;
  std::atomic<int> count{0};
  auto t1 = weft::create_task(wait_and_count(&ev, &count));
  auto t2 = weft::create_task(wait_and_count(&ev, &count));
  co_await weft::sleep(1ms);
  t1.cancel();
  CO_ASSERT_TRUE(co_await ended_cancelled(t1));
  ev.set();
  co_await t2;
  CO_ASSERT_EQ(count.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Workers, EventW, weft::testing::kWorkerCounts, weft::testing::worker_name);

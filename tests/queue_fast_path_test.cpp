// Queue put()/get() awaitables (issue 4, the throughput item): the fast path
// that completes in await_ready, the conversion to Coro for create_task and
// wait_for, item ownership of an unawaited put, and cancellation around the
// fast path. asyncio's put()/get() return without suspending when a slot or
// an item is available, so a cancellation requested before such a call is
// raised at the task's next suspension, not by the call (QUE-05/06 cover the
// waiting side). WEFT_TEST bodies run at one worker; QueueFastPathW at 1, 2, 8.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::ended_cancelled;
using weft::testing::ticks;

namespace {

struct SelfCancelOutcome {
  int got = -1;                 // what the awaited call returned
  bool raised_by_call = false;  // CancelledError came out of the queue call
  bool raised_later = false;    // ... or out of the next suspension
};

// Requests its own cancellation, then gets: the item comes back, the
// CancelledError comes from the sleep after it.
weft::Coro<void> cancel_self_then_get(weft::Queue<int>* q, SelfCancelOutcome* out) {
  weft::current_task().cancel("stop");
  try {
    out->got = co_await q->get();
  } catch (const weft::CancelledError&) {
    out->raised_by_call = true;
    throw;
  }
  try {
    co_await weft::sleep(0s);
  } catch (const weft::CancelledError&) {
    out->raised_later = true;
    throw;
  }
}

weft::Coro<void> cancel_self_then_put(weft::Queue<int>* q, int v, SelfCancelOutcome* out) {
  weft::current_task().cancel("stop");
  try {
    co_await q->put(v);
  } catch (const weft::CancelledError&) {
    out->raised_by_call = true;
    throw;
  }
  try {
    co_await weft::sleep(0s);
  } catch (const weft::CancelledError&) {
    out->raised_later = true;
    throw;
  }
}

weft::Coro<long long> sum_of(weft::Queue<int>* q, int n) {
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await q->get();
  co_return sum;
}

weft::Coro<void> put_range(weft::Queue<int>* q, int first, int n) {
  for (int i = 0; i < n; ++i) co_await q->put(first + i);
}

}  // namespace

WEFT_TEST(QueueFastPath, GetOnNonEmptyQueueReturnsTheItemAndCancellationComesAtTheNextAwait) {
  weft::Queue<int> q;
  q.put_nowait(7);
  SelfCancelOutcome out;
  auto t = weft::create_task(cancel_self_then_get(&q, &out));
  CO_ASSERT_TRUE(co_await ended_cancelled(t));
  CO_ASSERT_EQ(out.got, 7);  // as asyncio: get() did not suspend, so it took the item
  CO_ASSERT_TRUE(!out.raised_by_call);
  CO_ASSERT_TRUE(out.raised_later);
  CO_ASSERT_EQ(q.qsize(), 0u);
}

WEFT_TEST(QueueFastPath, GetOnEmptyQueueWithCancellationPendingTakesNothing) {
  weft::Queue<int> q;
  SelfCancelOutcome out;
  auto t = weft::create_task(cancel_self_then_get(&q, &out));
  CO_ASSERT_TRUE(co_await ended_cancelled(t));
  CO_ASSERT_TRUE(out.raised_by_call);  // it had to wait: the cancellation is raised there
  CO_ASSERT_EQ(out.got, -1);
  q.put_nowait(3);  // the cancelled getter is gone: the item stays
  CO_ASSERT_EQ(q.get_nowait(), 3);
}

WEFT_TEST(QueueFastPath, PutWithASlotFreeInsertsAndCancellationComesAtTheNextAwait) {
  weft::Queue<int> q(1);
  SelfCancelOutcome out;
  auto t = weft::create_task(cancel_self_then_put(&q, 5, &out));
  CO_ASSERT_TRUE(co_await ended_cancelled(t));
  CO_ASSERT_TRUE(!out.raised_by_call);
  CO_ASSERT_TRUE(out.raised_later);
  CO_ASSERT_EQ(q.get_nowait(), 5);  // as asyncio: the put did not suspend, so it inserted
}

WEFT_TEST(QueueFastPath, PutIntoFullQueueWithCancellationPendingInsertsNothing) {
  weft::Queue<int> q(1);
  q.put_nowait(1);
  SelfCancelOutcome out;
  auto t = weft::create_task(cancel_self_then_put(&q, 2, &out));
  CO_ASSERT_TRUE(co_await ended_cancelled(t));
  CO_ASSERT_TRUE(out.raised_by_call);
  CO_ASSERT_EQ(q.get_nowait(), 1);
  CO_ASSERT_EQ(q.qsize(), 0u);  // QUE-06: the cancelled put inserted nothing
}

WEFT_TEST(QueueFastPath, GetConvertedToCoroRunsAsATask) {
  weft::Queue<int> q;
  auto t = weft::create_task(weft::Coro<int>(q.get()));
  co_await ticks(2);
  CO_ASSERT_TRUE(!t.done());  // waiting on the empty queue
  co_await q.put(42);
  CO_ASSERT_EQ(co_await t, 42);
}

WEFT_TEST(QueueFastPath, PutConvertedToCoroRunsAsATaskAndOwnsItsItem) {
  weft::Queue<std::unique_ptr<int>> q(1);
  q.put_nowait(std::make_unique<int>(1));
  weft::Coro<void> put = q.put(std::make_unique<int>(2));  // owns the item until inserted
  auto t = weft::create_task(std::move(put));
  co_await ticks(2);
  CO_ASSERT_TRUE(!t.done());  // the queue is full
  CO_ASSERT_EQ(*(co_await q.get()), 1);
  co_await t;
  CO_ASSERT_EQ(*(co_await q.get()), 2);
}

WEFT_TEST(QueueFastPath, WaitForAGetTimesOutWithoutTakingALaterItem) {
  weft::Queue<int> q;
  bool timed_out = false;
  try {
    (void)co_await weft::wait_for(q.get(), 1ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  q.put_nowait(9);
  CO_ASSERT_EQ(co_await weft::wait_for(q.get(), 10s), 9);
  CO_ASSERT_EQ(q.qsize(), 0u);
}

WEFT_TEST(QueueFastPath, WaitForAPutOnAFullQueueTimesOutWithoutInserting) {
  weft::Queue<int> q(1);
  q.put_nowait(1);
  bool timed_out = false;
  try {
    co_await weft::wait_for(q.put(2), 1ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  CO_ASSERT_EQ(q.get_nowait(), 1);
  CO_ASSERT_EQ(q.qsize(), 0u);
  co_await weft::wait_for(q.put(3), 10s);
  CO_ASSERT_EQ(q.get_nowait(), 3);
}

WEFT_TEST(QueueFastPath, AnUnawaitedPutInsertsNothing) {
  weft::Queue<std::unique_ptr<int>> q;
  { auto op = q.put(std::make_unique<int>(1)); }  // dropped: the item goes with it
  { auto op = q.get(); }                          // dropped: takes nothing
  CO_ASSERT_EQ(q.qsize(), 0u);
  co_return;
}

WEFT_TEST(QueueFastPath, JoinSeesEveryPutWhileItemsStayUnfinished) {
  // The finished event is touched only when the unfinished count crosses 0.
  weft::Queue<int> q;
  for (int i = 0; i < 3; ++i) co_await q.put(i);
  auto joiner = weft::create_task(q.join());
  co_await ticks(2);
  for (int i = 0; i < 3; ++i) {
    (void)co_await q.get();
    CO_ASSERT_TRUE(!joiner.done());
    q.task_done();
  }
  co_await joiner;
  co_await q.put(4);  // unfinished again: a new join waits
  auto second = weft::create_task(q.join());
  co_await ticks(2);
  CO_ASSERT_TRUE(!second.done());
  (void)q.get_nowait();
  q.task_done();
  co_await second;
}

WEFT_TEST(QueueFastPath, RingGrowsAcrossTheWrapKeepingFifoOrder) {
  weft::Queue<std::string> q;
  int next_in = 0, next_out = 0;
  // Interleave so the ring wraps before each growth.
  for (int round = 1; round <= 6; ++round) {
    // The increment stays outside the co_await expression: Clang 16 sees the
    // operand more than once there and warns (-Wunsequenced).
    for (int i = 0; i < 10 * round; ++i) {
      std::string item = std::to_string(next_in++);
      co_await q.put(std::move(item));
    }
    for (int i = 0; i < 7 * round; ++i) CO_ASSERT_EQ(co_await q.get(), std::to_string(next_out++));
  }
  while (next_out < next_in) CO_ASSERT_EQ(q.get_nowait(), std::to_string(next_out++));
  CO_ASSERT_EQ(q.qsize(), 0u);
}

class QueueFastPathW : public weft::testing::WorkersTest {};

WEFT_TEST_P(QueueFastPathW, ProducersAndConsumersThroughSmallQueueLoseNothing) {
  const int producers = 4, per = weft::testing::scaled(20000);
  weft::Queue<int> q(8);
  std::vector<weft::Task<long long>> consumers;
  for (int c = 0; c < 2; ++c)
    consumers.push_back(weft::create_task(sum_of(&q, producers * per / 2)));
  std::vector<weft::Task<void>> puts;
  for (int p = 0; p < producers; ++p)
    puts.push_back(weft::create_task(put_range(&q, p * per, per)));
  for (auto& p : puts) co_await p;
  long long total = 0;
  for (auto& c : consumers) total += co_await c;
  const long long n = static_cast<long long>(producers) * per;
  CO_ASSERT_EQ(total, n * (n - 1) / 2);
  CO_ASSERT_EQ(q.qsize(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, QueueFastPathW, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);

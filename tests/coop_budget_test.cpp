// The cooperative budget (RunOptions::coop_budget, Tokio's coop): awaits that
// complete without suspending consume it; once a step has spent it, the next
// such await yields, so a task looping on fast paths cannot starve its loop's
// timers, I/O and other tasks. Nothing is taken twice or lost by a yield.
#include <atomic>
#include <chrono>
#include <string>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

weft::RunOptions one_worker(unsigned budget) {
  weft::RunOptions o;
  o.workers = 1;
  o.coop_budget = budget;
  return o;
}

const long kSpins = weft::testing::scaled(2'000'000);

/// Loops on the fast path of a queue that never empties.
weft::Coro<void> churn_queue(weft::Queue<int>* q, long n, std::atomic<long>* done) {
  for (long i = 0; i < n; ++i) {
    int v = co_await q->get();
    co_await q->put(v);
    done->store(i + 1, std::memory_order_relaxed);
  }
}

/// Arms a 1 ms timer while `churn` runs and reports how far the churn had got
/// when the timer fired.
weft::Coro<long> timer_during(weft::Task<void> churn, std::atomic<long>* done) {
  std::atomic<long> seen{-1};
  (void)weft::get_running_loop().call_later(1ms, [&] { seen.store(done->load()); });
  co_await churn;
  // Let the timer fire if the churn starved it until now.
  while (seen.load() < 0) co_await weft::sleep(1ms);
  co_return seen.load();
}

weft::Coro<long> queue_churn_with_timer() {
  weft::Queue<int> q;
  q.put_nowait(1);
  std::atomic<long> done{0};
  auto churn = weft::create_task(churn_queue(&q, kSpins, &done));
  co_return co_await timer_during(churn, &done);
}

TEST(Coop, ALoopOnANeverEmptyQueueDoesNotStarveATimer) {
  long seen = weft::run(queue_churn_with_timer(), one_worker(128));
  EXPECT_LT(seen, kSpins);  // the timer ran while the loop was still going
}

TEST(Coop, WithoutABudgetTheLoopRunsToTheEndFirstAsInAsyncio) {
  long seen = weft::run(queue_churn_with_timer(), one_worker(0));
  EXPECT_EQ(seen, kSpins);
}

TEST(Coop, OneWorkerHasNoBudgetByDefault) {
  weft::RunOptions o;
  o.workers = 1;
  EXPECT_EQ(weft::run(queue_churn_with_timer(), o), kSpins);
}

weft::Coro<void> churn_lock_and_queue(weft::Lock* lock, weft::Queue<int>* q, long n,
                                      std::atomic<long>* done) {
  for (long i = 0; i < n; ++i) {
    co_await lock->acquire();
    int v = co_await q->get();
    q->put_nowait(v);
    lock->release();
    done->store(i + 1, std::memory_order_relaxed);
  }
}

weft::Coro<long> lock_churn_with_timer() {
  weft::Lock lock;
  weft::Queue<int> q;
  q.put_nowait(1);
  std::atomic<long> done{0};
  auto churn = weft::create_task(churn_lock_and_queue(&lock, &q, kSpins / 2, &done));
  long seen = co_await timer_during(churn, &done);
  EXPECT_FALSE(lock.locked());
  co_return seen < kSpins / 2 ? 0 : 1;
}

// An uncontended lock is not a budget point itself (see permit_core.hpp): a
// yield holding it would convoy every other acquirer. The queue get inside
// the critical section is, so the loop yields while holding the lock, which
// is the program's own choice.
TEST(Coop, ALoopHoldingALockAroundAQueueGetDoesNotStarveATimer) {
  EXPECT_EQ(weft::run(lock_churn_with_timer(), one_worker(128)), 0);
}

weft::Coro<void> churn_future(weft::Future<int> f, long n, std::atomic<long>* done) {
  long sum = 0;
  for (long i = 0; i < n; ++i) {
    sum += co_await f;
    done->store(i + 1, std::memory_order_relaxed);
  }
  EXPECT_EQ(sum, n);
}

weft::Coro<long> future_churn_with_timer() {
  weft::Future<int> f;
  f.set_result(1);
  std::atomic<long> done{0};
  auto churn = weft::create_task(churn_future(f, kSpins, &done));
  co_return co_await timer_during(churn, &done);
}

TEST(Coop, AwaitingADoneFutureInALoopDoesNotStarveATimer) {
  EXPECT_LT(weft::run(future_churn_with_timer(), one_worker(128)), kSpins);
}

weft::Coro<void> churn_event(weft::Event* ev, long n, std::atomic<long>* done) {
  for (long i = 0; i < n; ++i) {
    co_await ev->wait();
    done->store(i + 1, std::memory_order_relaxed);
  }
}

weft::Coro<long> event_churn_with_timer() {
  weft::Event ev;
  ev.set();
  std::atomic<long> done{0};
  auto churn = weft::create_task(churn_event(&ev, kSpins / 4, &done));
  long seen = co_await timer_during(churn, &done);
  co_return seen < kSpins / 4 ? 0 : 1;
}

TEST(Coop, WaitingOnASetEventInALoopDoesNotStarveATimer) {
  EXPECT_EQ(weft::run(event_churn_with_timer(), one_worker(128)), 0);
}

/// A reader with a flooded buffer, read a byte at a time.
weft::Coro<void> drain_reader(weft::StreamReader* r, long n, std::atomic<long>* done) {
  for (long i = 0; i < n; ++i) {
    std::string b = co_await r->readexactly(1);
    EXPECT_EQ(b.size(), 1u);
    done->store(i + 1, std::memory_order_relaxed);
  }
}

weft::Coro<long> reader_flood_with_timer() {
  const long n = kSpins / 8;
  weft::StreamReader r(static_cast<ssize_t>(n) + 1);
  r.feed_data(std::string(static_cast<std::size_t>(n), 'x'));
  std::atomic<long> done{0};
  auto churn = weft::create_task(drain_reader(&r, n, &done));
  long seen = co_await timer_during(churn, &done);
  co_return seen < n ? 0 : 1;
}

TEST(Coop, AFloodedStreamReaderDoesNotStarveATimer) {
  EXPECT_EQ(weft::run(reader_flood_with_timer(), one_worker(128)), 0);
}

// --------------------------------------------- nothing taken twice or lost

weft::Coro<int> get_twice(weft::Queue<int>* q, int* first) {
  *first = co_await q->get();   // consumes the budget (1)
  co_return co_await q->get();  // an item is there, but the budget is spent: yields reserved
}

weft::Coro<void> cancel_a_yield_holding_a_reservation() {
  weft::Queue<int> q;
  q.put_nowait(1);
  q.put_nowait(2);
  int first = 0;
  auto t = weft::create_task(get_twice(&q, &first));
  co_await weft::sleep(0ms);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_THROW((void)q.get_nowait(), weft::QueueEmpty);  // reserved for t
  EXPECT_TRUE(t.cancel());
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(q.get_nowait(), 2);  // the reservation was given back
}

TEST(Coop, ACancelledYieldHoldingAQueueReservationGivesItBack) {
  weft::run(cancel_a_yield_holding_a_reservation(), one_worker(1));
}

weft::Coro<void> put_many(weft::Queue<int>* q, int n) {
  for (int i = 0; i < n; ++i) co_await q->put(i);
}

weft::Coro<long> get_many(weft::Queue<int>* q, int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await q->get();
  co_return sum;
}

class CoopW : public weft::testing::WorkersTest {};

TEST_P(CoopW, SmallBudgetsLoseAndDuplicateNothing) {
  for (unsigned budget : {1u, 2u, 7u}) {
    weft::RunOptions o;
    o.workers = GetParam();
    o.coop_budget = budget;
    long sum = weft::run(
        []() -> weft::Coro<long> {
          weft::Queue<int> q(16);
          const int n = static_cast<int>(weft::testing::scaled(20'000));
          auto p1 = weft::create_task(put_many(&q, n));
          auto p2 = weft::create_task(put_many(&q, n));
          auto c1 = weft::create_task(get_many(&q, n));
          auto c2 = weft::create_task(get_many(&q, n));
          co_await p1;
          co_await p2;
          long a = co_await c1;
          long b = co_await c2;
          EXPECT_EQ(q.qsize(), 0u);
          co_return a + b;
        }(),
        o);
    long n = weft::testing::scaled(20'000);
    EXPECT_EQ(sum, n * (n - 1));
  }
}

INSTANTIATE_TEST_SUITE_P(Workers, CoopW, ::testing::Values(1u, 2u, 4u, 8u),
                         weft::testing::worker_name);

}  // namespace

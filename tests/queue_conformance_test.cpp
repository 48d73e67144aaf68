// Queue, LifoQueue, PriorityQueue conformance: the QUE behaviours of
// docs/asyncio-behaviours.md (issue 4), asyncio 3.13 shutdown included.
// WEFT_TEST bodies run at one worker (exact asyncio order); QueueW tests run
// at 1, 2 and 8 workers and check everything but order.
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::ended_cancelled;
using weft::testing::eventually;
using weft::testing::ticks;

namespace {

template <class Q>
weft::Coro<int> get_one(Q* q) {
  co_return co_await q->get();
}

weft::Coro<void> put_one(weft::Queue<int>* q, int v) { co_await q->put(v); }

template <class F>
bool throws_shutdown(F f) {
  try {
    f();
  } catch (const weft::QueueShutDown&) {
    return true;
  }
  return false;
}

weft::Coro<bool> get_raises_shutdown(weft::Queue<int>* q) {
  try {
    co_await q->get();
  } catch (const weft::QueueShutDown&) {
    co_return true;
  }
  co_return false;
}

weft::Coro<bool> put_raises_shutdown(weft::Queue<int>* q, int v) {
  try {
    co_await q->put(v);
  } catch (const weft::QueueShutDown&) {
    co_return true;
  }
  co_return false;
}

struct ByPointee {
  bool operator()(const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) const {
    return *a < *b;
  }
};

}  // namespace

class QueueW : public weft::testing::WorkersTest {};

WEFT_TEST_P(QueueW, Que01FifoOrderAndSizeQueries) {
  weft::Queue<int> q;
  CO_ASSERT_TRUE(q.empty() && !q.full());
  CO_ASSERT_EQ(q.maxsize(), 0u);
  for (int v : {1, 3, 2}) co_await q.put(v);
  CO_ASSERT_EQ(q.qsize(), 3u);
  CO_ASSERT_TRUE(!q.empty() && !q.full());  // unbounded: never full
  std::vector<int> got;
  for (int i = 0; i < 3; ++i) got.push_back(co_await q.get());
  CO_ASSERT_TRUE(got == (std::vector<int>{1, 3, 2}));
  CO_ASSERT_TRUE(q.empty());
  weft::Queue<int> bounded(2);
  bounded.put_nowait(1);
  CO_ASSERT_TRUE(!bounded.full());
  bounded.put_nowait(2);
  CO_ASSERT_TRUE(bounded.full());
  CO_ASSERT_EQ(bounded.qsize(), 2u);
}

WEFT_TEST(Queue, Que02PutterBlocksWhenFull) {
  weft::Queue<int> q(2);
  std::vector<int> have_been_put;
  auto putter =
      weft::create_task([](weft::Queue<int>* q, std::vector<int>* out) -> weft::Coro<void> {
        for (int i = 0; i < 3; ++i) {
          co_await q->put(i);
          out->push_back(i);
        }
      }(&q, &have_been_put));
  co_await ticks(2);
  CO_ASSERT_TRUE(have_been_put == (std::vector<int>{0, 1}));
  CO_ASSERT_EQ(co_await q.get(), 0);
  co_await ticks();
  CO_ASSERT_TRUE(have_been_put == (std::vector<int>{0, 1, 2}));
  co_await putter;
  CO_ASSERT_EQ(q.qsize(), 2u);
}

WEFT_TEST_P(QueueW, Que02PutterResumesAfterGet) {
  weft::Queue<int> q(2);
  std::atomic<int> put{0};
  auto putter = weft::create_task([](weft::Queue<int>* q, std::atomic<int>* n) -> weft::Coro<void> {
    for (int i = 0; i < 3; ++i) {
      co_await q->put(i);
      n->fetch_add(1);
    }
  }(&q, &put));
  CO_ASSERT_TRUE(co_await eventually([&] { return put.load() == 2; }));
  co_await weft::sleep(1ms);
  CO_ASSERT_EQ(put.load(), 2);
  CO_ASSERT_EQ(co_await q.get(), 0);
  co_await putter;
  CO_ASSERT_EQ(put.load(), 3);
}

WEFT_TEST_P(QueueW, Que03NowaitRaisesEmptyAndFull) {
  weft::Queue<int> q(1);
  bool empty = false, full = false;
  try {
    q.get_nowait();
  } catch (const weft::QueueEmpty&) {
    empty = true;
  }
  q.put_nowait(1);
  try {
    q.put_nowait(2);
  } catch (const weft::QueueFull&) {
    full = true;
  }
  CO_ASSERT_TRUE(empty && full);
  CO_ASSERT_EQ(q.get_nowait(), 1);
  co_return;
}

WEFT_TEST(Queue, Que04BlockedGettersAndPuttersAreServedFifo) {
  weft::Queue<std::string> q;
  std::vector<std::pair<int, std::string>> got;
  std::vector<weft::Task<void>> getters;
  for (int i = 0; i < 3; ++i)
    getters.push_back(weft::create_task(
        [](weft::Queue<std::string>* q, std::vector<std::pair<int, std::string>>* out,
           int id) -> weft::Coro<void> { out->emplace_back(id, co_await q->get()); }(&q, &got, i)));
  co_await ticks();
  for (const char* s : {"a", "b", "c"}) q.put_nowait(s);
  for (auto& t : getters) co_await t;
  CO_ASSERT_TRUE(got == (std::vector<std::pair<int, std::string>>{{0, "a"}, {1, "b"}, {2, "c"}}));

  weft::Queue<std::string> bounded(1);
  bounded.put_nowait("x");
  auto pa = weft::create_task(
      [](weft::Queue<std::string>* q) -> weft::Coro<void> { co_await q->put("a"); }(&bounded));
  auto pb = weft::create_task(
      [](weft::Queue<std::string>* q) -> weft::Coro<void> { co_await q->put("b"); }(&bounded));
  co_await ticks();
  CO_ASSERT_EQ(bounded.get_nowait(), std::string("x"));
  CO_ASSERT_EQ(co_await bounded.get(), std::string("a"));
  CO_ASSERT_EQ(co_await bounded.get(), std::string("b"));
  co_await pa;
  co_await pb;
}

WEFT_TEST_P(QueueW, Que04BoundedProducerConsumerNeverDeadlocks) {
  weft::Queue<int> q(1);
  const int n = static_cast<int>(weft::testing::scaled(2000));
  auto producer = weft::create_task([](weft::Queue<int>* q, int n) -> weft::Coro<void> {
    for (int i = 0; i < n; ++i) co_await q->put(i);
  }(&q, n));
  auto consumer = weft::create_task([](weft::Queue<int>* q, int n) -> weft::Coro<long> {
    long sum = 0;
    int last = -1;
    for (int i = 0; i < n; ++i) {
      int v = co_await q->get();
      if (v != last + 1) co_return -1;  // one producer: FIFO holds at any worker count
      last = v;
      sum += v;
    }
    co_return sum;
  }(&q, n));
  co_await producer;
  long sum = co_await consumer;
  CO_ASSERT_EQ(sum, static_cast<long>(n) * (n - 1) / 2);
}

WEFT_TEST(Queue, Que05GetterCancelledAfterWakeLeavesTheItem) {
  weft::Queue<int> q;
  auto getter = weft::create_task(get_one(&q));
  co_await ticks();
  q.put_nowait(1);  // wakes getter ...
  getter.cancel();  // ... cancelled before it runs
  CO_ASSERT_TRUE(co_await ended_cancelled(getter));
  q.put_nowait(2);
  CO_ASSERT_EQ(co_await q.get(), 1);  // the item stayed, in order
  CO_ASSERT_EQ(co_await q.get(), 2);
}

WEFT_TEST_P(QueueW, Que05SurvivingReadersGetExactlyThePutItems) {
  weft::Queue<int> q;
  std::vector<weft::Task<int>> readers;
  for (int i = 0; i < 3; ++i) readers.push_back(weft::create_task(get_one(&q)));
  co_await weft::sleep(1ms);
  readers[0].cancel();  // the queue is empty: it can only end cancelled
  q.put_nowait(1);
  q.put_nowait(2);
  CO_ASSERT_TRUE(co_await ended_cancelled(readers[0]));
  std::multiset<int> got;
  got.insert(co_await readers[1]);
  got.insert(co_await readers[2]);
  CO_ASSERT_TRUE(got == (std::multiset<int>{1, 2}));
  CO_ASSERT_TRUE(q.empty());
}

WEFT_TEST(Queue, Que06CancelledPutDoesNotInsertAndRetryWorks) {
  weft::Queue<int> q(1);
  q.put_nowait(1);
  auto putter = weft::create_task(put_one(&q, 2));
  co_await ticks();
  putter.cancel();
  CO_ASSERT_TRUE(co_await ended_cancelled(putter));
  CO_ASSERT_EQ(q.get_nowait(), 1);
  CO_ASSERT_TRUE(q.empty());  // 2 was never inserted
  co_await q.put(3);          // retrying works
  CO_ASSERT_EQ(q.get_nowait(), 3);
  // A putter woken by a get and cancelled before it runs inserts nothing
  // and passes its slot on.
  q.put_nowait(1);
  auto p2 = weft::create_task(put_one(&q, 2));
  auto p3 = weft::create_task(put_one(&q, 3));
  co_await ticks();
  CO_ASSERT_EQ(q.get_nowait(), 1);  // wakes p2 ...
  p2.cancel();                      // ... cancelled before it runs
  CO_ASSERT_TRUE(co_await ended_cancelled(p2));
  co_await p3;
  CO_ASSERT_EQ(q.qsize(), 1u);
  CO_ASSERT_EQ(q.get_nowait(), 3);
}

WEFT_TEST_P(QueueW, Que06CancelledWaitersDoNotLinger) {
  weft::Queue<int> q(1);
  q.put_nowait(0);
  std::vector<weft::Task<void>> putters;
  for (int i = 0; i < 5; ++i) putters.push_back(weft::create_task(put_one(&q, 100 + i)));
  co_await weft::sleep(1ms);
  for (auto& p : putters) p.cancel();
  int cancelled = 0;
  for (auto& p : putters) cancelled += co_await ended_cancelled(p);
  CO_ASSERT_EQ(q.get_nowait(), 0);
  // Whatever was not cancelled in time got in (at most one, maxsize 1); a new
  // put then goes straight through once the queue has room: nothing lingers.
  CO_ASSERT_EQ(static_cast<int>(q.qsize()), 5 - cancelled);
  if (q.qsize()) q.get_nowait();
  co_await q.put(7);
  CO_ASSERT_EQ(q.get_nowait(), 7);
  // A get abandoned by cancellation does not hold on to later items.
  weft::Queue<int> q2;
  auto g = weft::create_task(get_one(&q2));
  co_await weft::sleep(1ms);
  g.cancel();
  co_await ended_cancelled(g);
  q2.put_nowait(5);
  CO_ASSERT_EQ(q2.get_nowait(), 5);
}

WEFT_TEST_P(QueueW, Que07TaskDoneAndJoin) {
  weft::Queue<int> q;
  co_await q.join();  // returns at once on a fresh queue
  for (int i = 0; i < 100; ++i) q.put_nowait(i);
  std::atomic<long> sum{0};
  std::vector<weft::Task<void>> workers_;
  for (int w = 0; w < 3; ++w)
    workers_.push_back(
        weft::create_task([](weft::Queue<int>* q, std::atomic<long>* s) -> weft::Coro<void> {
          for (;;) {
            int v = co_await q->get();
            s->fetch_add(v);
            q->task_done();
          }
        }(&q, &sum)));
  co_await q.join();
  CO_ASSERT_EQ(sum.load(), 4950);
  for (auto& w : workers_) w.cancel();
  for (auto& w : workers_) co_await ended_cancelled(w);
  bool threw = false;
  try {
    q.task_done();
  } catch (const weft::ValueError& e) {
    threw = true;
    EXPECT_STREQ(e.what(), "task_done() called too many times");
  }
  CO_ASSERT_TRUE(threw);
}

WEFT_TEST_P(QueueW, Que08LifoAndPriorityOrder) {
  weft::LifoQueue<int> lifo;
  weft::PriorityQueue<int> prio;
  for (int v : {1, 3, 2}) {
    co_await lifo.put(v);
    co_await prio.put(v);
  }
  std::vector<int> l, p;
  for (int i = 0; i < 3; ++i) {
    l.push_back(co_await lifo.get());
    p.push_back(co_await prio.get());
  }
  CO_ASSERT_TRUE(l == (std::vector<int>{2, 3, 1}));
  CO_ASSERT_TRUE(p == (std::vector<int>{1, 2, 3}));
  weft::PriorityQueue<std::tuple<int, std::string>> tuples;
  tuples.put_nowait({2, "b"});
  tuples.put_nowait({1, "z"});
  tuples.put_nowait({1, "a"});
  CO_ASSERT_TRUE(tuples.get_nowait() == std::make_tuple(1, std::string("a")));
  CO_ASSERT_TRUE(tuples.get_nowait() == std::make_tuple(1, std::string("z")));
  CO_ASSERT_TRUE(tuples.get_nowait() == std::make_tuple(2, std::string("b")));
  // Move-only values work in every flavour.
  weft::PriorityQueue<std::unique_ptr<int>, ByPointee> ptrs;
  ptrs.put_nowait(std::make_unique<int>(9));
  ptrs.put_nowait(std::make_unique<int>(8));
  CO_ASSERT_EQ(*ptrs.get_nowait(), 8);
  weft::Queue<std::unique_ptr<int>> owned;
  co_await owned.put(std::make_unique<int>(4));
  auto got = co_await owned.get();
  CO_ASSERT_EQ(*got, 4);
  weft::LifoQueue<std::unique_ptr<int>> lowned;
  lowned.put_nowait(std::make_unique<int>(5));
  CO_ASSERT_EQ(*lowned.get_nowait(), 5);
}

WEFT_TEST(Queue, Que09GracefulShutdownOfANonEmptyQueue) {
  weft::Queue<int> q(2);
  q.put_nowait(1);
  q.put_nowait(2);
  auto putter = weft::create_task(put_raises_shutdown(&q, 3));
  co_await ticks();
  q.shutdown();
  CO_ASSERT_TRUE(co_await putter);  // the blocked putter is woken with QueueShutDown
  CO_ASSERT_TRUE(throws_shutdown([&] { q.put_nowait(4); }));
  CO_ASSERT_TRUE(co_await put_raises_shutdown(&q, 5));
  CO_ASSERT_EQ(co_await q.get(), 1);  // items already queued still come out
  CO_ASSERT_EQ(q.get_nowait(), 2);
  CO_ASSERT_TRUE(co_await get_raises_shutdown(&q));
  CO_ASSERT_TRUE(throws_shutdown([&] { q.get_nowait(); }));
  auto joiner = weft::create_task(q.join());
  co_await ticks();
  CO_ASSERT_TRUE(!joiner.done());  // join still waits for task_done()
  q.task_done();
  q.task_done();
  co_await joiner;
}

WEFT_TEST_P(QueueW, Que09ShutdownWakesPuttersAndDrains) {
  weft::Queue<int> q(1);
  q.put_nowait(1);
  std::vector<weft::Task<bool>> putters;
  for (int i = 0; i < 4; ++i) putters.push_back(weft::create_task(put_raises_shutdown(&q, 10 + i)));
  co_await weft::sleep(1ms);
  q.shutdown();
  for (auto& p : putters) CO_ASSERT_TRUE(co_await p);
  CO_ASSERT_EQ(co_await q.get(), 1);
  CO_ASSERT_TRUE(co_await get_raises_shutdown(&q));
  q.task_done();
  co_await q.join();
}

WEFT_TEST_P(QueueW, Que10ShutdownOfAnEmptyQueueWakesGetters) {
  weft::Queue<int> q;
  std::vector<weft::Task<bool>> getters;
  for (int i = 0; i < 4; ++i) getters.push_back(weft::create_task(get_raises_shutdown(&q)));
  co_await weft::sleep(1ms);
  q.shutdown();
  for (auto& g : getters) CO_ASSERT_TRUE(co_await g);
  co_await q.join();
}

WEFT_TEST_P(QueueW, Que11ImmediateShutdown) {
  weft::Queue<int> q;
  q.put_nowait(1);
  q.put_nowait(2);
  q.put_nowait(3);
  int fetched = co_await q.get();  // fetched before the shutdown: needs task_done()
  CO_ASSERT_EQ(fetched, 1);
  auto joiner = weft::create_task(q.join());
  q.shutdown(true);
  CO_ASSERT_EQ(q.qsize(), 0u);  // drained; unfinished drops by 2, to 1
  CO_ASSERT_TRUE(co_await get_raises_shutdown(&q));
  CO_ASSERT_TRUE(co_await put_raises_shutdown(&q, 4));
  co_await weft::sleep(1ms);
  CO_ASSERT_TRUE(!joiner.done());
  q.task_done();
  co_await joiner;
  bool threw = false;
  try {
    q.task_done();
  } catch (const weft::ValueError&) {
    threw = true;
  }
  CO_ASSERT_TRUE(threw);
  // With nothing outstanding, immediate shutdown releases join() at once.
  weft::Queue<int> q2;
  q2.put_nowait(1);
  auto j2 = weft::create_task(q2.join());
  co_await weft::sleep(1ms);
  q2.shutdown(true);
  co_await j2;
}

INSTANTIATE_TEST_SUITE_P(Workers, QueueW, weft::testing::kWorkerCounts, weft::testing::worker_name);

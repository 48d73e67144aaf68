// Condition conformance: the COND behaviours of docs/asyncio-behaviours.md
// (issue 4). WEFT_TEST bodies run at one worker (exact asyncio order); CondW
// tests run at 1, 2 and 8 workers and check everything but order.
#include <atomic>
#include <string>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::ended_cancelled;
using weft::testing::eventually;
using weft::testing::ticks;

namespace {

weft::Coro<void> wait_and_record(weft::Condition* cond, std::vector<int>* out, int id) {
  co_await cond->acquire();
  co_await cond->wait();
  out->push_back(id);  // holds the lock; does not release it (as the asyncio test)
}

weft::Coro<void> scoped_wait_and_record(weft::Condition* cond, std::vector<int>* out, int id) {
  auto g = co_await cond->scoped();
  co_await cond->wait();
  out->push_back(id);
}

}  // namespace

class CondW : public weft::testing::WorkersTest {};

WEFT_TEST_P(CondW, Cond01WaitAndNotifyNeedTheLock) {
  weft::Condition cond;
  bool threw = false;
  try {
    co_await cond.wait();
  } catch (const weft::RuntimeError& e) {
    threw = true;
    EXPECT_STREQ(e.what(), "cannot wait on un-acquired lock");
  }
  CO_ASSERT_TRUE(threw);
  try {
    cond.notify();
    ADD_FAILURE() << "notify without the lock did not throw";
  } catch (const weft::RuntimeError& e) {
    EXPECT_STREQ(e.what(), "cannot notify on un-acquired lock");
  }
  try {
    cond.notify_all();
    ADD_FAILURE() << "notify_all without the lock did not throw";
  } catch (const weft::RuntimeError& e) {
    EXPECT_STREQ(e.what(), "cannot notify on un-acquired lock");
  }
  CO_ASSERT_TRUE(!cond.locked());
}

WEFT_TEST(Condition, Cond02WaitReleasesAndReacquiresOneAtATime) {
  weft::Condition cond;
  std::vector<int> result;
  auto t1 = weft::create_task(wait_and_record(&cond, &result, 1));
  auto t2 = weft::create_task(wait_and_record(&cond, &result, 2));
  auto t3 = weft::create_task(wait_and_record(&cond, &result, 3));
  co_await ticks();
  CO_ASSERT_TRUE(result.empty());
  CO_ASSERT_TRUE(!cond.locked());
  co_await cond.acquire();
  cond.notify();
  co_await ticks();
  CO_ASSERT_TRUE(result.empty());  // cannot resume while main holds the lock
  CO_ASSERT_TRUE(cond.locked());
  cond.release();
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1}));
  CO_ASSERT_TRUE(cond.locked());
  cond.notify(2);
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1}));
  cond.release();
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1, 2}));
  cond.release();
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1, 2, 3}));
  CO_ASSERT_TRUE(cond.locked());
  cond.release();
  CO_ASSERT_TRUE(t1.done() && t2.done() && t3.done());
}

WEFT_TEST_P(CondW, Cond02NotifiedWaitersHoldTheLockOneAtATime) {
  weft::Condition cond;
  std::atomic<int> inside{0}, max_inside{0}, done{0};
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 8; ++i)
    tasks.push_back(
        weft::create_task([](weft::Condition* c, std::atomic<int>* in, std::atomic<int>* mx,
                             std::atomic<int>* dn) -> weft::Coro<void> {
          auto g = co_await c->scoped();
          dn->fetch_add(1);
          co_await c->wait();
          int now = in->fetch_add(1) + 1;
          int seen = mx->load();
          while (now > seen && !mx->compare_exchange_weak(seen, now)) {
          }
          co_await weft::sleep(std::chrono::nanoseconds(0));
          in->fetch_sub(1);
        }(&cond, &inside, &max_inside, &done)));
  CO_ASSERT_TRUE(co_await eventually([&] { return done.load() == 8; }));
  {
    auto g = co_await cond.scoped();  // every waiter is in wait() once we hold it
    cond.notify_all();
  }
  for (auto& t : tasks) co_await t;
  CO_ASSERT_EQ(max_inside.load(), 1);
  CO_ASSERT_TRUE(!cond.locked());
}

WEFT_TEST(Condition, Cond03NotifyNWakesTheFirstN) {
  weft::Condition cond;
  std::vector<int> result;
  auto t1 = weft::create_task(scoped_wait_and_record(&cond, &result, 1));
  auto t2 = weft::create_task(scoped_wait_and_record(&cond, &result, 2));
  auto t3 = weft::create_task(scoped_wait_and_record(&cond, &result, 3));
  co_await ticks();
  CO_ASSERT_TRUE(result.empty());
  {
    auto g = co_await cond.scoped();
    cond.notify(1);
  }
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1}));
  {
    auto g = co_await cond.scoped();
    cond.notify(1);
    cond.notify(2048);
  }
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1, 2, 3}));
  CO_ASSERT_TRUE(t1.done() && t2.done() && t3.done());
}

WEFT_TEST_P(CondW, Cond03NotifyAllWakesEveryWaiter) {
  weft::Condition cond;
  std::atomic<int> waiting{0}, woken{0};
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 10; ++i)
    tasks.push_back(weft::create_task(
        [](weft::Condition* c, std::atomic<int>* w, std::atomic<int>* k) -> weft::Coro<void> {
          auto g = co_await c->scoped();
          w->fetch_add(1);
          co_await c->wait();
          k->fetch_add(1);
        }(&cond, &waiting, &woken)));
  CO_ASSERT_TRUE(co_await eventually([&] { return waiting.load() == 10; }));
  {
    auto g = co_await cond.scoped();
    cond.notify(3);
  }
  CO_ASSERT_TRUE(co_await eventually([&] { return woken.load() == 3; }));
  {
    auto g = co_await cond.scoped();
    cond.notify_all();
  }
  for (auto& t : tasks) co_await t;
  CO_ASSERT_EQ(woken.load(), 10);
}

WEFT_TEST(Condition, Cond04WaitForRechecksThePredicate) {
  weft::Condition cond;
  bool presult = false;
  std::vector<int> result;
  auto t =
      weft::create_task([](weft::Condition* c, bool* p, std::vector<int>* out) -> weft::Coro<void> {
        co_await c->acquire();
        bool v = co_await c->wait_for([p] { return *p; });
        if (v) out->push_back(1);
        c->release();
      }(&cond, &presult, &result));
  co_await ticks();
  CO_ASSERT_TRUE(result.empty());
  co_await cond.acquire();
  cond.notify();
  cond.release();
  co_await ticks();
  CO_ASSERT_TRUE(result.empty());  // notified while pred was false: still waiting
  presult = true;
  co_await cond.acquire();
  cond.notify();
  cond.release();
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1}));
  CO_ASSERT_TRUE(t.done());
}

WEFT_TEST_P(CondW, Cond04WaitForReturnsThePredicateValue) {
  weft::Condition cond;
  // Truthy at once: returns its value without the lock.
  int v = co_await cond.wait_for([] { return 3; });
  CO_ASSERT_EQ(v, 3);
  CO_ASSERT_TRUE(!cond.locked());
  // False and the lock not held: RuntimeError.
  bool threw = false;
  try {
    co_await cond.wait_for([] { return false; });
  } catch (const weft::RuntimeError&) {
    threw = true;
  }
  CO_ASSERT_TRUE(threw);
  std::atomic<int> state{0};
  auto t = weft::create_task([](weft::Condition* c, std::atomic<int>* s) -> weft::Coro<int> {
    auto g = co_await c->scoped();
    int r = co_await c->wait_for([s] { return s->load(); });
    co_return r;
  }(&cond, &state));
  co_await weft::sleep(1ms);
  {
    auto g = co_await cond.scoped();
    state = 7;
    cond.notify();
  }
  int got = co_await t;
  CO_ASSERT_EQ(got, 7);
}

namespace {
struct CancelProbe {
  std::atomic<bool> entered{false};  // set with the lock held, just before wait()
  std::string message;
  bool locked_at_catch = false;
  bool caught = false;
};

weft::Coro<void> wait_expecting_cancel(weft::Condition* cond, CancelProbe* probe) {
  co_await cond->acquire();
  probe->entered = true;
  try {
    co_await cond->wait();
  } catch (const weft::CancelledError& e) {
    probe->caught = true;
    probe->message = e.message();
    probe->locked_at_catch = cond->locked();
  }
  cond->release();
}
}  // namespace

WEFT_TEST_P(CondW, Cond05CancelledWaitReacquiresAndKeepsTheMessage) {
  weft::Condition cond;
  CancelProbe probe;
  auto t = weft::create_task(wait_expecting_cancel(&cond, &probe));
  CO_ASSERT_TRUE(co_await eventually([&] { return probe.entered.load(); }));
  co_await cond.acquire();  // succeeds only once t has released it inside wait()
  cond.release();
  t.cancel("foo");
  co_await t;
  CO_ASSERT_TRUE(probe.caught);
  CO_ASSERT_EQ(probe.message, std::string("foo"));
  CO_ASSERT_TRUE(probe.locked_at_catch);
  CO_ASSERT_TRUE(!cond.locked());
  // No stale waiter: a notify with nobody waiting is a no-op.
  co_await cond.acquire();
  cond.notify_all();
  cond.release();
}

WEFT_TEST(Condition, Cond05CancelledWhileReacquiringStillReacquires) {
  weft::Condition cond;
  CancelProbe probe;
  auto t = weft::create_task(wait_expecting_cancel(&cond, &probe));
  co_await ticks();
  co_await cond.acquire();
  cond.notify();
  co_await ticks();  // t is now blocked re-acquiring the lock main holds
  t.cancel("foo");
  co_await ticks();
  CO_ASSERT_TRUE(!t.done());  // still waiting for the lock
  cond.release();
  co_await t;
  CO_ASSERT_TRUE(probe.caught);
  CO_ASSERT_EQ(probe.message, std::string("foo"));
  CO_ASSERT_TRUE(probe.locked_at_catch);
}

WEFT_TEST_P(CondW, Cond05WaitForTimeoutInsideTheLockRaisesTimeoutError) {
  weft::Condition cond;
  auto g = co_await cond.scoped();
  bool timed_out = false;
  try {
    auto bounded = weft::wait_for(cond.wait(), 10ms);
    co_await std::move(bounded);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  CO_ASSERT_TRUE(cond.locked());  // re-acquired before the cancellation left wait()
}

WEFT_TEST(Condition, Cond06CancelledNotifiedWaiterPassesTheNotificationOn) {
  weft::Condition cond;
  int state = 0;
  auto consumer = [](weft::Condition* c, int* s) -> weft::Coro<void> {
    auto g = co_await c->scoped();
    for (;;) {
      co_await c->wait_for([s] { return *s != 0; });
      if (*s < 0) co_return;
      *s -= 1;
    }
  };
  auto c0 = weft::create_task(consumer(&cond, &state));
  auto c1 = weft::create_task(consumer(&cond, &state));
  co_await ticks();
  {
    auto g = co_await cond.scoped();
    state += 1;
    cond.notify(1);
    c0.cancel();  // cancelled while its notification is on its way
  }
  co_await ticks(3);
  CO_ASSERT_EQ(state, 0);  // c1 got the notification and consumed the item
  CO_ASSERT_TRUE(co_await ended_cancelled(c0));
  CO_ASSERT_TRUE(!cond.locked());
  {
    auto g = co_await cond.scoped();
    state = -1;
    cond.notify_all();
  }
  co_await c1;
}

WEFT_TEST_P(CondW, Cond06NotifyCancelRaceLeavesWaitWithTheLock) {
  for (int round = 0; round < weft::testing::scaled(100); ++round) {
    weft::Condition cond;
    CancelProbe probe;
    std::atomic<bool> returned{false};
    auto t = weft::create_task(
        [](weft::Condition* c, CancelProbe* p, std::atomic<bool>* ok) -> weft::Coro<void> {
          co_await c->acquire();
          p->entered = true;
          try {
            co_await c->wait();
            ok->store(c->locked());
          } catch (const weft::CancelledError&) {
            p->caught = true;
            p->locked_at_catch = c->locked();
          }
          c->release();
        }(&cond, &probe, &returned));
    CO_ASSERT_TRUE(co_await eventually([&] { return probe.entered.load(); }));
    co_await cond.acquire();  // t is inside wait() once we hold the lock
    cond.notify();
    t.cancel();
    cond.release();
    co_await t;
    CO_ASSERT_TRUE(returned.load() || (probe.caught && probe.locked_at_catch));
    CO_ASSERT_TRUE(!cond.locked());
  }
}

WEFT_TEST_P(CondW, Cond06ConditionSharesAnExplicitLock) {
  weft::Lock lock;
  weft::Condition cond(&lock);
  CO_ASSERT_TRUE(!cond.locked());
  {
    auto g = co_await lock.scoped();
    CO_ASSERT_TRUE(cond.locked());
    cond.notify();  // legal: the shared lock is held
  }
  CO_ASSERT_TRUE(!cond.locked());
  co_await cond.acquire();
  CO_ASSERT_TRUE(lock.locked());
  cond.release();
  CO_ASSERT_TRUE(!lock.locked());
}

INSTANTIATE_TEST_SUITE_P(Workers, CondW, weft::testing::kWorkerCounts, weft::testing::worker_name);

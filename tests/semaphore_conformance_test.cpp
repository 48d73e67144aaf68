// Semaphore / BoundedSemaphore conformance: the SEM behaviours of
// docs/asyncio-behaviours.md (issue 4). WEFT_TEST bodies run at one
// worker (exact asyncio order); SemW tests run at 1, 2 and 8 workers.
#include <atomic>
#include <string>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::ended_cancelled;
using weft::testing::eventually;
using weft::testing::ticks;

namespace {

weft::Coro<void> acquire_and_record(weft::Semaphore* sem, std::vector<int>* out, int id) {
  co_await sem->acquire();
  out->push_back(id);
}

weft::Coro<void> acquire_and_count(weft::Semaphore* sem, std::atomic<int>* count) {
  co_await sem->acquire();
  count->fetch_add(1);
}

}  // namespace

class SemW : public weft::testing::WorkersTest {};

WEFT_TEST_P(SemW, Sem01DefaultValueOneNegativeRejectedZeroLocked) {
  weft::Semaphore sem;
  CO_ASSERT_TRUE(!sem.locked());
  co_await sem.acquire();
  CO_ASSERT_TRUE(sem.locked());
  sem.release();
  CO_ASSERT_TRUE(!sem.locked());
  try {
    weft::Semaphore bad(-1);
    ADD_FAILURE() << "Semaphore(-1) did not throw";
  } catch (const weft::ValueError& e) {
    EXPECT_STREQ(e.what(), "initial value must be >= 0");
  }
  weft::Semaphore zero(0);
  CO_ASSERT_TRUE(zero.locked());
}

WEFT_TEST(Semaphore, Sem02CountingAndHandOff) {
  weft::Semaphore sem(3);
  std::vector<int> result;
  co_await sem.acquire();
  co_await sem.acquire();
  CO_ASSERT_TRUE(!sem.locked());
  auto t1 = weft::create_task(acquire_and_record(&sem, &result, 1));
  auto t2 = weft::create_task(acquire_and_record(&sem, &result, 2));
  auto t3 = weft::create_task(acquire_and_record(&sem, &result, 3));
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1}));  // one acquires, two wait
  CO_ASSERT_TRUE(sem.locked());
  sem.release();
  sem.release();  // both units go straight to the waiters: the value stays 0
  CO_ASSERT_TRUE(sem.locked());
  co_await ticks();
  CO_ASSERT_TRUE(result == (std::vector<int>{1, 2, 3}));
  CO_ASSERT_TRUE(t1.done() && t2.done() && t3.done());
  CO_ASSERT_TRUE(sem.locked());  // value 0
  sem.release();
  CO_ASSERT_TRUE(!sem.locked());  // value 1
}

WEFT_TEST_P(SemW, Sem02EveryReleaseAdmitsOneWaiter) {
  weft::Semaphore sem(2);
  std::atomic<int> admitted{0};
  co_await sem.acquire();
  co_await sem.acquire();
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 4; ++i)
    tasks.push_back(weft::create_task(acquire_and_count(&sem, &admitted)));
  co_await weft::sleep(1ms);
  CO_ASSERT_EQ(admitted.load(), 0);
  for (int i = 1; i <= 4; ++i) {
    sem.release();
    CO_ASSERT_TRUE(co_await eventually([&] { return admitted.load() == i; }));
  }
  for (auto& t : tasks) co_await t;
  CO_ASSERT_TRUE(sem.locked());
}

namespace {
weft::Coro<void> twice(weft::Semaphore* sem, std::vector<std::string>* out, std::string tag) {
  co_await sem->acquire();
  out->push_back(tag + "_1");
  co_await weft::sleep(1ms);
  sem->release();
  co_await sem->acquire();
  out->push_back(tag + "_2");
  co_await weft::sleep(1ms);
  sem->release();
}

weft::Coro<void> release_and_reacquire(weft::Semaphore* sem, std::vector<int>* out) {
  co_await sem->acquire();
  out->push_back(2);
  sem->release();
  co_await sem->acquire();
  out->push_back(4);
}
}  // namespace

WEFT_TEST(Semaphore, Sem03FifoOrderNoBarging) {
  weft::Semaphore sem(1);
  std::vector<std::string> result;
  auto a = weft::create_task(twice(&sem, &result, "c1"));
  auto b = weft::create_task(twice(&sem, &result, "c2"));
  auto c = weft::create_task(twice(&sem, &result, "c3"));
  co_await a;
  co_await b;
  co_await c;
  CO_ASSERT_TRUE(result ==
                 (std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"}));
}

WEFT_TEST(Semaphore, Sem03ReleaseAndReacquireQueuesBehindWokenWaiters) {
  weft::Semaphore sem(1);
  std::vector<int> result;
  auto t1 = weft::create_task(acquire_and_record(&sem, &result, 1));
  auto t2 = weft::create_task(release_and_reacquire(&sem, &result));
  auto t3 = weft::create_task(acquire_and_record(&sem, &result, 3));
  co_await ticks();
  sem.release();
  sem.release();
  co_await t1;
  co_await t3;
  sem.release();  // t2's second acquire queued behind t3
  co_await t2;
  CO_ASSERT_TRUE(result == (std::vector<int>{1, 2, 3, 4}));
}

WEFT_TEST(Semaphore, Sem04CancelledWaitersAreSkipped) {
  weft::Semaphore sem(0);
  std::vector<int> result;
  auto t1 = weft::create_task(acquire_and_record(&sem, &result, 1));
  auto t2 = weft::create_task(acquire_and_record(&sem, &result, 2));
  auto t3 = weft::create_task(acquire_and_record(&sem, &result, 3));
  co_await ticks();
  t1.cancel();
  co_await ticks();
  sem.release();
  sem.release();
  co_await t2;
  co_await t3;
  CO_ASSERT_TRUE(t1.cancelled());
  CO_ASSERT_TRUE(result == (std::vector<int>{2, 3}));
}

WEFT_TEST(Semaphore, Sem04CancelJustAfterReleaseDoesNotHang) {
  weft::Semaphore sem(0);
  std::vector<int> result;
  auto t1 = weft::create_task(acquire_and_record(&sem, &result, 1));
  auto t2 = weft::create_task(acquire_and_record(&sem, &result, 2));
  co_await ticks();
  sem.release();  // granted to t1 ...
  t1.cancel();    // ... cancelled before it runs: the unit passes to t2
  co_await t2;
  CO_ASSERT_TRUE(co_await ended_cancelled(t1));
  CO_ASSERT_TRUE(result == (std::vector<int>{2}));
  CO_ASSERT_TRUE(sem.locked());
}

WEFT_TEST_P(SemW, Sem04CancelRacingReleaseNeverLosesAUnit) {
  for (int round = 0; round < weft::testing::scaled(200); ++round) {
    weft::Semaphore sem(0);
    std::atomic<int> count{0};
    auto t1 = weft::create_task(acquire_and_count(&sem, &count));
    auto t2 = weft::create_task(acquire_and_count(&sem, &count));
    if (round % 2) co_await ticks();
    t1.cancel();
    sem.release();
    co_await ended_cancelled(t1);
    CO_ASSERT_TRUE(co_await eventually([&] { return count.load() >= 1; }));
    if (!t2.done()) {
      t2.cancel();
      co_await ended_cancelled(t2);
    }
    CO_ASSERT_EQ(count.load(), 1);
    CO_ASSERT_TRUE(sem.locked());
  }
}

WEFT_TEST_P(SemW, Sem05BoundedRejectsOverReleasePlainRises) {
  weft::BoundedSemaphore bsem(1);
  co_await bsem.acquire();
  bsem.release();
  try {
    bsem.release();
    ADD_FAILURE() << "over-release did not throw";
  } catch (const weft::ValueError& e) {
    EXPECT_STREQ(e.what(), "BoundedSemaphore released too many times");
  }
  CO_ASSERT_TRUE(!bsem.locked());
  co_await bsem.acquire();  // still one unit, not two
  CO_ASSERT_TRUE(bsem.locked());
  weft::Semaphore sem(1);
  sem.release();
  sem.release();  // 3
  co_await sem.acquire();
  co_await sem.acquire();
  co_await sem.acquire();
  CO_ASSERT_TRUE(sem.locked());
}

INSTANTIATE_TEST_SUITE_P(Workers, SemW, weft::testing::kWorkerCounts, weft::testing::worker_name);

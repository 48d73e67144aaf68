// Misuse of the sync primitives gives clear errors (issue 4).
#include <string>

#include "sync_test_util.hpp"

namespace {

template <class E, class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

WEFT_TEST(SyncMisuse, ReleasingAnUnlockedLockIsRuntimeError) {
  weft::Lock lock;
  CO_ASSERT_EQ(error_of<weft::RuntimeError>([&] { lock.release(); }),
               std::string("Lock is not acquired."));
  co_await lock.acquire();
  lock.release();
  CO_ASSERT_EQ(error_of<weft::RuntimeError>([&] { lock.release(); }),
               std::string("Lock is not acquired."));
}

WEFT_TEST(SyncMisuse, OverReleasingABoundedSemaphoreIsValueError) {
  weft::BoundedSemaphore sem(2);
  CO_ASSERT_EQ(error_of<weft::ValueError>([&] { sem.release(); }),
               std::string("BoundedSemaphore released too many times"));
  weft::BoundedSemaphore zero(0);
  CO_ASSERT_EQ(error_of<weft::ValueError>([&] { zero.release(); }),
               std::string("BoundedSemaphore released too many times"));
  co_return;
}

WEFT_TEST(SyncMisuse, NegativeSemaphoreIsValueError) {
  CO_ASSERT_EQ(error_of<weft::ValueError>([] { weft::Semaphore s(-1); }),
               std::string("initial value must be >= 0"));
  CO_ASSERT_EQ(error_of<weft::ValueError>([] { weft::BoundedSemaphore s(-3); }),
               std::string("initial value must be >= 0"));
  co_return;
}

WEFT_TEST(SyncMisuse, BarrierWithoutPartiesIsValueError) {
  CO_ASSERT_EQ(error_of<weft::ValueError>([] { weft::Barrier b(0); }),
               std::string("parties must be > 0"));
  CO_ASSERT_EQ(error_of<weft::ValueError>([] { weft::Barrier b(-2); }),
               std::string("parties must be > 0"));
  co_return;
}

WEFT_TEST(SyncMisuse, TooManyTaskDoneIsValueError) {
  weft::Queue<int> q;
  CO_ASSERT_EQ(error_of<weft::ValueError>([&] { q.task_done(); }),
               std::string("task_done() called too many times"));
  q.put_nowait(1);
  (void)q.get_nowait();
  q.task_done();
  CO_ASSERT_EQ(error_of<weft::ValueError>([&] { q.task_done(); }),
               std::string("task_done() called too many times"));
  co_return;
}

WEFT_TEST(SyncMisuse, PutAfterShutdownIsQueueShutDown) {
  weft::Queue<int> q;
  q.shutdown();
  CO_ASSERT_EQ(error_of<weft::QueueShutDown>([&] { q.put_nowait(1); }),
               std::string("queue is shut down"));
  bool threw = false;
  try {
    co_await q.put(1);
  } catch (const weft::QueueShutDown&) {
    threw = true;
  }
  CO_ASSERT_TRUE(threw);
  CO_ASSERT_EQ(error_of<weft::QueueShutDown>([&] { (void)q.get_nowait(); }),
               std::string("queue is shut down"));
}

WEFT_TEST(SyncMisuse, ConditionWithoutTheLockIsRuntimeError) {
  weft::Condition cond;
  CO_ASSERT_EQ(error_of<weft::RuntimeError>([&] { cond.notify(); }),
               std::string("cannot notify on un-acquired lock"));
  CO_ASSERT_EQ(error_of<weft::RuntimeError>([&] { cond.release(); }),
               std::string("Lock is not acquired."));
  co_return;
}

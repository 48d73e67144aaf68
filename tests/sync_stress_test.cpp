// Stress tests of the sync primitives across workers (issue 4): many tasks on
// 2 and 8 workers (oversubscribed on small machines), with tasks migrating
// between threads and being cancelled at random. Run under ThreadSanitizer
// too; iteration counts shrink there through weft::testing::scaled().
// Random choices come from a fixed seed, recorded as the test property "seed".
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::ended_cancelled;
using weft::testing::eventually;
using weft::testing::scaled;

namespace {

constexpr unsigned kSeed = 20240904;

class SyncStress : public weft::testing::WorkersTest {};

weft::Coro<void> increment(weft::Lock* lock, long* counter, long n) {
  for (long i = 0; i < n; ++i) {
    co_await lock->acquire();
    ++*counter;  // plain memory: only the lock orders these writes
    if (i % 64 == 0) co_await weft::sleep(std::chrono::nanoseconds(0));  // migrate while holding it
    lock->release();
  }
}

}  // namespace

WEFT_TEST_P(SyncStress, LockProtectedIncrementsAreExact) {
  weft::Lock lock;
  long counter = 0;
  const long n = scaled(100000);
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 8; ++i) tasks.push_back(weft::create_task(increment(&lock, &counter, n)));
  for (auto& t : tasks) co_await t;
  co_await lock.acquire();
  CO_ASSERT_EQ(counter, 8 * n);
  lock.release();
}

namespace {

struct Ledger {
  explicit Ledger(int n) : put(n), received(n) {}
  std::vector<std::atomic<int>> put;       // 1: inserted by a put that returned
  std::vector<std::atomic<int>> received;  // times a get returned it
  std::atomic<int> next{0};
};

weft::Coro<void> producer(weft::Queue<int>* q, Ledger* ledger, int total) {
  for (;;) {
    int id = ledger->next.fetch_add(1);
    if (id >= total) co_return;
    try {
      co_await q->put(id);
    } catch (const weft::CancelledError&) {
      // Not inserted: hand the id to whoever produces next.
      ledger->put[id].store(-1);
      throw;
    }
    ledger->put[id].store(1);
    if (id % 8 == 0) co_await weft::sleep(std::chrono::nanoseconds(0));
  }
}

weft::Coro<void> consumer(weft::Queue<int>* q, Ledger* ledger) {
  for (;;) {
    int id = co_await q->get();
    ledger->received[id].fetch_add(1);
  }
}

}  // namespace

WEFT_TEST_P(SyncStress, MpmcQueueWithRandomCancellationLosesAndDuplicatesNothing) {
  std::mt19937 rng(kSeed + workers);
  ::testing::Test::RecordProperty("seed", std::to_string(kSeed + workers));
  const int total = static_cast<int>(scaled(40000));
  weft::Queue<int> q(16);
  Ledger ledger(total);
  std::vector<weft::Task<void>> producers, consumers;
  for (int i = 0; i < 4; ++i) {
    producers.push_back(weft::create_task(producer(&q, &ledger, total)));
    consumers.push_back(weft::create_task(consumer(&q, &ledger)));
  }
  int cancels = 0;
  for (;;) {
    bool all_done = true;
    for (auto& p : producers) all_done = all_done && p.done();
    if (all_done && ledger.next.load() >= total && cancels >= scaled(400)) break;
    co_await weft::sleep(std::chrono::microseconds(rng() % 50));
    auto& pool = (rng() % 2) ? producers : consumers;
    auto& victim = pool[rng() % pool.size()];
    victim.cancel();
    co_await ended_cancelled(victim);
    ++cancels;
    victim = (&pool == &producers) ? weft::create_task(producer(&q, &ledger, total))
                                   : weft::create_task(consumer(&q, &ledger));
  }
  CO_ASSERT_TRUE(co_await eventually([&] { return q.empty(); }));
  for (auto& c : consumers) c.cancel();
  for (auto& c : consumers) co_await ended_cancelled(c);
  std::vector<int> left(total, 0);
  while (!q.empty()) left[q.get_nowait()]++;
  int inserted = 0;
  for (int id = 0; id < total; ++id) {
    int got = ledger.received[id].load() + left[id];
    if (ledger.put[id].load() == 1) {
      ++inserted;
      CO_ASSERT_EQ(got, 1);
    } else {
      CO_ASSERT_EQ(got, 0);  // a cancelled put inserted nothing
    }
  }
  EXPECT_GT(cancels, 0);
  EXPECT_GT(inserted, total / 2);
  ::testing::Test::RecordProperty("cancels", cancels);
  ::testing::Test::RecordProperty("inserted", inserted);
}

namespace {

weft::Coro<void> bounded_section(weft::Semaphore* sem, std::atomic<int>* inside,
                                 std::atomic<int>* worst, std::atomic<long>* passes) {
  for (;;) {
    auto g = co_await sem->scoped();
    int now = inside->fetch_add(1) + 1;
    struct Leave {  // runs before g releases, also when cancelled below
      std::atomic<int>* n;
      ~Leave() { n->fetch_sub(1); }
    } leave{inside};
    int seen = worst->load();
    while (now > seen && !worst->compare_exchange_weak(seen, now)) {
    }
    co_await weft::sleep(std::chrono::nanoseconds(0));
    passes->fetch_add(1);
  }
}

}  // namespace

WEFT_TEST_P(SyncStress, SemaphoreNeverAdmitsMoreThanItsValue) {
  std::mt19937 rng(kSeed + 7 * workers);
  ::testing::Test::RecordProperty("seed", std::to_string(kSeed + 7 * workers));
  constexpr int k = 3;
  weft::Semaphore sem(k);
  std::atomic<int> inside{0}, worst{0};
  std::atomic<long> passes{0};
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 16; ++i)
    tasks.push_back(weft::create_task(bounded_section(&sem, &inside, &worst, &passes)));
  const long target = scaled(100000);
  while (passes.load() < target) {
    co_await weft::sleep(std::chrono::microseconds(rng() % 200));
    auto& victim = tasks[rng() % tasks.size()];
    victim.cancel();
    co_await ended_cancelled(victim);
    victim = weft::create_task(bounded_section(&sem, &inside, &worst, &passes));
  }
  for (auto& t : tasks) t.cancel();
  for (auto& t : tasks) co_await ended_cancelled(t);
  CO_ASSERT_TRUE(worst.load() <= k);
  CO_ASSERT_EQ(inside.load(), 0);
  // Every permit came back: k acquisitions succeed without waiting.
  for (int i = 0; i < k; ++i) co_await sem.acquire();
  CO_ASSERT_TRUE(sem.locked());
}

namespace {

struct Items {
  weft::Condition cond;
  long items = 0;  // guarded by cond's lock
  bool stop = false;
  std::atomic<long> consumed{0};
};

weft::Coro<void> item_consumer(Items* s) {
  auto g = co_await s->cond.scoped();
  for (;;) {
    co_await s->cond.wait_for([s] { return s->items > 0 || s->stop; });
    if (s->items == 0) co_return;  // stopped
    --s->items;
    s->consumed.fetch_add(1);
  }
}

}  // namespace

WEFT_TEST_P(SyncStress, ConditionWaitForNeverMissesANotify) {
  std::mt19937 rng(kSeed + 13 * workers);
  ::testing::Test::RecordProperty("seed", std::to_string(kSeed + 13 * workers));
  Items s;
  std::vector<weft::Task<void>> consumers;
  for (int i = 0; i < 6; ++i) consumers.push_back(weft::create_task(item_consumer(&s)));
  const long total = scaled(20000);
  for (long i = 0; i < total; ++i) {
    {
      auto g = co_await s.cond.scoped();
      ++s.items;
      s.cond.notify(1);  // exactly one wake-up per item: a lost one strands it
    }
    if (i % 97 == 0) {
      // Cancel a consumer, possibly right after it was notified: its
      // notification must pass on to another consumer.
      auto& victim = consumers[rng() % consumers.size()];
      victim.cancel();
      co_await ended_cancelled(victim);
      victim = weft::create_task(item_consumer(&s));
    }
    if (i % 16 == 0) co_await weft::sleep(std::chrono::nanoseconds(0));
  }
  // Every item is consumed without any further notify.
  CO_ASSERT_TRUE(co_await eventually([&] { return s.consumed.load() == total; }));
  {
    auto g = co_await s.cond.scoped();
    s.stop = true;
    s.cond.notify_all();
  }
  for (auto& c : consumers) co_await ended_cancelled(c);
  CO_ASSERT_EQ(s.items, 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, SyncStress, ::testing::Values(2u, 8u),
                         weft::testing::worker_name);

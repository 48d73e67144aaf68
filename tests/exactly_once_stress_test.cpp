// Exactly-once stress tests (issue 13, part 1): a value that a timed-out or
// cancelled operation has already taken (a queue item, a lock, a permit,
// bytes from a reader, a future's result) is either handed to the caller or
// left where it came from, never dropped and never delivered twice.
//
// Every test runs at 1, 2, 4 and 8 workers (oversubscribed on small
// machines), awaits the primitives through weft::wait_for with timeouts drawn
// between 1 and 200 microseconds, counts every TimeoutError and tries again,
// and (most tests) has a canceller task cancel random tasks, which catch the
// CancelledError, uncancel() as asyncio requires, and go on. At the end each
// test accounts for every item, permit or byte exactly once. No assertion
// depends on timing; iteration counts shrink under the sanitizers through
// weft::testing::scaled(). Random choices come from fixed seeds (recorded as
// the test property "seed"); the interleavings still vary from run to run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::scaled;

namespace {

constexpr unsigned kSeed = 20250113;

class ExactlyOnce : public weft::testing::WorkersTest {};

using Micros = std::chrono::microseconds;

/// A timeout between 1 and 200 microseconds.
Micros micro_timeout(std::mt19937& rng) { return Micros(1 + rng() % 200); }

unsigned seed_for(unsigned workers, unsigned test, unsigned task) {
  return kSeed + 1000003u * test + 1009u * workers + task;
}

/// Withdraws the cancellation just caught (asyncio: a task that goes on after
/// catching CancelledError calls uncancel()).
void uncancel_and_count(std::atomic<long>* cancels) {
  weft::current_task().uncancel();
  cancels->fetch_add(1);
}

/// One trip through the ready queue (the task may migrate); a cancellation
/// delivered here is caught and counted.
weft::Coro<void> yield_point(std::atomic<long>* cancels) {
  try {
    co_await weft::sleep(std::chrono::nanoseconds(0));
  } catch (const weft::CancelledError&) {
    uncancel_and_count(cancels);
  }
}

struct CancellerState {
  std::atomic<bool> stop{false};
  std::atomic<long> sent{0};  // cancel() calls that returned true
};

/// Runs `body` after counting the task as begun. A task cancelled before
/// its first step never runs its body (TASK-08) and would do none of its
/// work, so the canceller waits until every victim has begun.
weft::Coro<void> begun(weft::Coro<void> body, std::atomic<int>* count) {
  count->fetch_add(1);
  co_await std::move(body);
}

/// Once `*begun` counts every victim, cancels a random one of `victims`
/// every 0 to `max_gap` us until told to stop.
weft::Coro<void> canceller(std::vector<weft::TaskRef> victims, const std::atomic<int>* begun,
                           std::shared_ptr<CancellerState> state, unsigned seed, unsigned max_gap) {
  std::mt19937 rng(seed);
  while (!state->stop.load() && begun->load() < static_cast<int>(victims.size()))
    co_await weft::sleep(std::chrono::nanoseconds(0));
  while (!state->stop.load()) {
    co_await weft::sleep(Micros(rng() % (max_gap + 1)));
    if (victims[rng() % victims.size()].cancel()) state->sent.fetch_add(1);
  }
}

/// Awaits `t`; a task that ended cancelled is tolerated (its work is in the
/// ledgers, not in its result). Any other exception propagates.
weft::Coro<void> settle(weft::Task<void> t) {
  try {
    co_await t;
  } catch (const weft::CancelledError&) {
  }
}

/// True once pred() holds; polls (yielding first, then every millisecond) and
/// gives up after about 20 s: a hang guard, never a timing assertion.
weft::Coro<bool> until(std::function<bool()> pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) co_return true;
    co_await weft::sleep(std::chrono::nanoseconds(0));
  }
  for (int i = 0; i < 20000; ++i) {
    if (pred()) co_return true;
    co_await weft::sleep(1ms);
  }
  co_return pred();
}

/// Acquires `prim` (a Lock, Semaphore or Condition) with a 10 s hang guard:
/// false (and a test failure) if it never comes free, e.g. because a
/// timed-out acquire left it held.
template <class Prim>
weft::Coro<bool> acquire_or_fail(Prim* prim) {
  try {
    co_await weft::wait_for(prim->acquire(), 10s);
    co_return true;
  } catch (const weft::TimeoutError&) {
    ADD_FAILURE() << "not free within 10 s: held by nobody?";
  }
  co_return false;
}

/// Waits for `tasks` (which end once told to stop); any still running after
/// about 20 s are cancelled until they end, so that a broken primitive fails
/// the test instead of hanging it.
weft::Coro<void> finish_all(std::vector<weft::Task<void>>& tasks) {
  std::function<bool()> all_done = [&tasks] {
    return std::all_of(tasks.begin(), tasks.end(), [](const auto& t) { return t.done(); });
  };
  if (!co_await until(all_done)) {
    ADD_FAILURE() << "tasks still running 20 s after they were told to stop";
    while (!all_done()) {
      for (auto& t : tasks)
        if (!t.done()) t.cancel();
      co_await weft::sleep(1ms);
    }
  }
  for (auto& t : tasks) co_await settle(t);
}

/// A canceller over `victims` (each started through begun(..., count)) that
/// stops (and is awaited) on request; it also stops, unawaited, if the test
/// returns early.
class CancelDriver {
 public:
  CancelDriver(std::vector<weft::TaskRef> victims, const std::atomic<int>* count, unsigned seed,
               unsigned max_gap = 150)
      : state_(std::make_shared<CancellerState>()),
        task_(weft::create_task(canceller(std::move(victims), count, state_, seed, max_gap))) {}
  CancelDriver(const CancelDriver&) = delete;
  CancelDriver& operator=(const CancelDriver&) = delete;
  ~CancelDriver() { state_->stop.store(true); }
  /// Stops the canceller and waits for it; returns how many cancels it sent.
  weft::Coro<long> stop() {
    state_->stop.store(true);
    co_await settle(task_);
    co_return state_->sent.load();
  }

 private:
  std::shared_ptr<CancellerState> state_;
  weft::Task<void> task_;
};

// ------------------------------------------------------------------ queues

struct QueueLedger {
  explicit QueueLedger(int n) : received(n) {}
  std::vector<std::atomic<int>> received;  // times a get() returned the value
  std::atomic<long> out_of_range{0};
  std::atomic<long> put_timeouts{0}, put_cancels{0}, get_timeouts{0}, get_cancels{0};
  std::atomic<long> gets{0};
  std::atomic<bool> stop{false};
};

/// Puts each of `mine` until one put of it returns: a put that raised
/// (TimeoutError, CancelledError) must not have inserted, or the value would
/// arrive twice.
template <class Q>
weft::Coro<void> queue_producer(Q* q, QueueLedger* ledger, std::vector<int> mine, unsigned seed) {
  std::mt19937 rng(seed);
  for (int v : mine) {
    for (;;) {
      try {
        const unsigned how = rng() % 10;
        if (how < 6) {
          co_await weft::wait_for(q->put(v), micro_timeout(rng));
        } else if (how < 9) {
          co_await q->put(v);
        } else {
          bool full = false;
          try {
            q->put_nowait(v);
          } catch (const weft::QueueFull&) {
            full = true;
          }
          if (full) {
            co_await weft::sleep(std::chrono::nanoseconds(0));
            continue;
          }
        }
        break;
      } catch (const weft::TimeoutError&) {
        ledger->put_timeouts.fetch_add(1);
      } catch (const weft::CancelledError&) {
        uncancel_and_count(&ledger->put_cancels);
      }
    }
    const unsigned pause = rng() % 16;
    if (pause == 0) {
      co_await yield_point(&ledger->put_cancels);
    } else if (pause == 1) {  // let the consumers wait (and time out)
      try {
        co_await weft::sleep(Micros(rng() % 100));
      } catch (const weft::CancelledError&) {
        uncancel_and_count(&ledger->put_cancels);
      }
    }
  }
}

template <class Q>
weft::Coro<void> queue_consumer(Q* q, QueueLedger* ledger, unsigned seed) {
  std::mt19937 rng(seed);
  const int n = static_cast<int>(ledger->received.size());
  while (!ledger->stop.load()) {
    try {
      int v = co_await weft::wait_for(q->get(), micro_timeout(rng));
      ledger->gets.fetch_add(1);
      if (v < 0 || v >= n)
        ledger->out_of_range.fetch_add(1);
      else
        ledger->received[v].fetch_add(1);
      const unsigned pause = rng() % 16;
      if (pause == 0)
        co_await weft::sleep(std::chrono::nanoseconds(0));
      else if (pause == 1)  // let the queue fill up (and the putters time out)
        co_await weft::sleep(Micros(rng() % 200));
    } catch (const weft::TimeoutError&) {
      ledger->get_timeouts.fetch_add(1);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&ledger->get_cancels);
    }
  }
}

/// 4 producers put `total` distinct ints into a bounded queue (some through
/// wait_for(q.put(v), t)), 6 consumers take them through wait_for(q.get(), t),
/// with random cancels of both. Every int must be received (or left in the
/// queue) exactly once.
template <class Q>
weft::Coro<void> queue_exactly_once(unsigned workers, unsigned test) {
  const unsigned seed = seed_for(workers, test, 0);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  const int total = static_cast<int>(scaled(8000));
  Q q(2);
  QueueLedger ledger(total);

  std::vector<int> values(total);
  std::iota(values.begin(), values.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(values.begin(), values.end(), rng);
  std::vector<weft::Task<void>> producers, consumers;
  std::vector<weft::TaskRef> victims;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  for (unsigned p = 0; p < 4; ++p) {
    std::vector<int> mine;
    for (int i = static_cast<int>(p); i < total; i += 4) mine.push_back(values[i]);
    producers.push_back(weft::create_task(begun(
        queue_producer(&q, &ledger, std::move(mine), seed_for(workers, test, 1 + p)), &started)));
    victims.emplace_back(producers.back());
  }
  for (unsigned c = 0; c < 6; ++c) {
    consumers.push_back(weft::create_task(
        begun(queue_consumer(&q, &ledger, seed_for(workers, test, 10 + c)), &started)));
    victims.emplace_back(consumers.back());
  }
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));

  for (auto& p : producers) co_await settle(p);
  std::function<bool()> drained = [&q] { return q.empty(); };
  const bool emptied = co_await until(drained);
  const long sent = co_await cancels.stop();
  ledger.stop.store(true);
  for (auto& c : consumers) co_await settle(c);
  EXPECT_TRUE(emptied) << "the consumers did not empty the queue";

  std::vector<int> left(total, 0);
  long leftovers = 0;
  while (!q.empty()) {
    int v = q.get_nowait();
    ++leftovers;
    if (v >= 0 && v < total) left[v]++;
  }
  CO_ASSERT_EQ(ledger.out_of_range.load(), 0);
  int missing = 0, duplicated = 0;
  std::ostringstream missing_ones, duplicated_ones;
  for (int v = 0; v < total; ++v) {
    const int got = ledger.received[v].load() + left[v];
    if (got == 0 && ++missing <= 5) missing_ones << " " << v;
    if (got > 1 && ++duplicated <= 5) duplicated_ones << " " << v << " (x" << got << ")";
  }
  EXPECT_EQ(missing, 0) << "items lost (taken by a get that raised?):" << missing_ones.str();
  EXPECT_EQ(duplicated, 0) << "items received twice (inserted by a put that raised?):"
                           << duplicated_ones.str();
  EXPECT_EQ(ledger.gets.load() + leftovers, total);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
  ::testing::Test::RecordProperty("put_timeouts", std::to_string(ledger.put_timeouts.load()));
  ::testing::Test::RecordProperty("get_timeouts", std::to_string(ledger.get_timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
  ::testing::Test::RecordProperty(
      "cancels_caught", std::to_string(ledger.put_cancels.load() + ledger.get_cancels.load()));
  ::testing::Test::RecordProperty("leftovers", std::to_string(leftovers));
}

struct TaskGetLedger {
  explicit TaskGetLedger(int n) : received(n) {}
  std::vector<std::atomic<int>> received;
  std::atomic<long> out_of_range{0}, timeouts{0}, cancels{0}, recovered{0};
  std::atomic<long> timeout_with_value{0};  // wait_for(task) raised although the task had a value
  std::atomic<bool> stop{false};

  void take(int v) {
    if (v < 0 || v >= static_cast<int>(received.size()))
      out_of_range.fetch_add(1);
    else
      received[v].fetch_add(1);
  }
};

/// Gets through tasks of their own: `wait_for(task, t)` (a timeout cancels
/// the task and waits for it: a task that already took its item must hand it
/// over, WFOR-05) or `wait_for(gather(a, b), t)` (a timeout cancels both
/// children; a child that already took its item keeps it as its result).
/// Every item ends up returned, or in the result of a task the caller holds.
weft::Coro<void> task_get_consumer(weft::Queue<int>* q, TaskGetLedger* ledger, unsigned seed) {
  std::mt19937 rng(seed);
  while (!ledger->stop.load()) {
    std::vector<weft::Task<int>> mine;
    mine.push_back(weft::create_task(q->get()));
    const bool pair = rng() % 2 == 0;
    if (pair) mine.push_back(weft::create_task(q->get()));
    if (rng() % 4 == 0) co_await yield_point(&ledger->cancels);  // let them start (or finish)
    bool settled = false, timed_out = false;
    try {
      if (pair) {
        auto [a, b] = co_await weft::wait_for(weft::gather(mine[0], mine[1]), micro_timeout(rng));
        ledger->take(a);
        ledger->take(b);
      } else {
        int v = co_await weft::wait_for(mine[0], micro_timeout(rng));
        ledger->take(v);
      }
      settled = true;
    } catch (const weft::TimeoutError&) {
      ledger->timeouts.fetch_add(1);
      timed_out = true;
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&ledger->cancels);
    }
    if (settled) continue;
    // Timed out or cancelled: each task ends cancelled (it took nothing) or
    // holds its item. Cancel them (again) and collect what they hold.
    for (auto& t : mine) {
      t.cancel();
      while (!t.done()) co_await yield_point(&ledger->cancels);
      if (t.cancelled()) continue;
      ledger->recovered.fetch_add(1);
      ledger->take(t.result());
      if (!pair && timed_out) ledger->timeout_with_value.fetch_add(1);
    }
  }
}

// ----------------------------------------------------------- lock, semaphore

struct PermitLedger {
  std::atomic<int> inside{0};
  std::atomic<long> violations{0}, acquired{0}, timeouts{0}, cancels{0};
  long guarded = 0;  // plain memory: only the lock (Lock test) orders these writes
};

/// `rounds` timed acquires of `prim` (a Lock or Semaphore admitting `k`);
/// each success enters the section (at most k inside), maybe yields or sleeps
/// while holding, leaves, releases.
template <class Prim>
weft::Coro<void> permit_user(Prim* prim, int k, PermitLedger* ledger, int rounds, unsigned seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < rounds; ++i) {
    bool held = false;
    try {
      co_await weft::wait_for(prim->acquire(), micro_timeout(rng));
      held = true;
    } catch (const weft::TimeoutError&) {
      ledger->timeouts.fetch_add(1);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&ledger->cancels);
    }
    if (!held) continue;
    ledger->acquired.fetch_add(1);
    if (ledger->inside.fetch_add(1) >= k) ledger->violations.fetch_add(1);
    if (k == 1) ++ledger->guarded;
    const unsigned pause = rng() % 8;
    if (pause == 0) {
      co_await yield_point(&ledger->cancels);  // may migrate while holding
    } else if (pause == 1) {
      try {
        co_await weft::sleep(Micros(rng() % 50));
      } catch (const weft::CancelledError&) {
        uncancel_and_count(&ledger->cancels);
      }
    }
    if (ledger->inside.fetch_sub(1) > k) ledger->violations.fetch_add(1);
    prim->release();
  }
}

template <class Prim>
weft::Coro<void> run_permit_users(Prim* prim, int k, PermitLedger* ledger, unsigned workers,
                                  unsigned test) {
  ::testing::Test::RecordProperty("seed", std::to_string(seed_for(workers, test, 0)));
  const int rounds = static_cast<int>(scaled(400));
  std::vector<weft::Task<void>> users;
  std::vector<weft::TaskRef> victims;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  for (unsigned i = 0; i < 16; ++i) {
    users.push_back(weft::create_task(
        begun(permit_user(prim, k, ledger, rounds, seed_for(workers, test, 1 + i)), &started)));
    victims.emplace_back(users.back());
  }
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  for (auto& u : users) co_await settle(u);
  const long sent = co_await cancels.stop();
  EXPECT_EQ(ledger->violations.load(), 0) << "more than " << k << " holders at once";
  EXPECT_EQ(ledger->inside.load(), 0);
  ::testing::Test::RecordProperty("acquired", std::to_string(ledger->acquired.load()));
  ::testing::Test::RecordProperty("timeouts", std::to_string(ledger->timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// ---------------------------------------------------------------- condition

struct CondState {
  weft::Condition cond;
  long items = 0;  // guarded by cond's lock
  std::atomic<int> holders{0};
  std::atomic<long> violations{0}, consumed{0}, timeouts{0}, cancels{0}, renotified{0};
  std::atomic<bool> stop{false};

  /// The caller now holds the lock: it must be locked, and nobody else may
  /// believe they hold it.
  void enter() {
    if (!cond.locked()) violations.fetch_add(1);
    if (holders.fetch_add(1) != 0) violations.fetch_add(1);
  }
  void leave() {
    if (holders.fetch_sub(1) != 1) violations.fetch_add(1);
  }
};

/// Takes the lock (timed), then waits (timed) for an item; a timed-out or
/// cancelled wait() must come back with the lock held again, as asyncio's.
weft::Coro<void> cond_consumer(CondState* s, unsigned seed) {
  std::mt19937 rng(seed);
  while (!s->stop.load()) {
    bool held = false;
    try {
      co_await weft::wait_for(s->cond.acquire(), micro_timeout(rng));
      held = true;
    } catch (const weft::TimeoutError&) {
      s->timeouts.fetch_add(1);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&s->cancels);
    }
    if (!held) continue;
    s->enter();
    while (s->items == 0 && !s->stop.load()) {
      s->leave();  // wait() releases the lock
      bool timed_out = false;
      try {
        co_await weft::wait_for(s->cond.wait(), micro_timeout(rng));
      } catch (const weft::TimeoutError&) {
        s->timeouts.fetch_add(1);
        timed_out = true;
      } catch (const weft::CancelledError&) {
        uncancel_and_count(&s->cancels);
      }
      s->enter();  // held again, however wait() ended
      if (timed_out && rng() % 4 == 0) break;
    }
    if (s->items > 0) {
      --s->items;
      s->consumed.fetch_add(1);
    }
    s->leave();
    s->cond.release();
    if (rng() % 8 == 0) co_await yield_point(&s->cancels);
  }
}

/// A waiter that never consumes: timed waits with the lock held; when a
/// wait() returns normally (it was notified) the notification is passed on, so
/// that it still reaches a consumer.
weft::Coro<void> cond_bystander(CondState* s, unsigned seed) {
  std::mt19937 rng(seed);
  while (!s->stop.load()) {
    bool held = false;
    try {
      co_await weft::wait_for(s->cond.acquire(), micro_timeout(rng));
      held = true;
    } catch (const weft::TimeoutError&) {
      s->timeouts.fetch_add(1);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&s->cancels);
    }
    if (!held) continue;
    s->enter();
    for (int i = 0; i < 4 && !s->stop.load(); ++i) {
      s->leave();
      bool notified = false;
      try {
        co_await weft::wait_for(s->cond.wait(), micro_timeout(rng));
        notified = true;
      } catch (const weft::TimeoutError&) {
        s->timeouts.fetch_add(1);
      } catch (const weft::CancelledError&) {
        uncancel_and_count(&s->cancels);
      }
      s->enter();
      if (notified) {
        s->renotified.fetch_add(1);
        s->cond.notify(1);
      }
    }
    s->leave();
    s->cond.release();
  }
}

/// An untimed consumer (cond.wait_for(pred)); catches cancellations, which
/// leave it holding the lock.
weft::Coro<void> cond_untimed_consumer(CondState* s) {
  for (;;) {
    if (s->stop.load()) co_return;
    try {
      co_await s->cond.acquire();
      break;
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&s->cancels);
    }
  }
  s->enter();
  auto ready = [s] { return s->items > 0 || s->stop.load(); };
  while (!s->stop.load()) {
    s->leave();
    try {
      co_await s->cond.wait_for(ready);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&s->cancels);
    }
    s->enter();
    if (s->items > 0) {
      --s->items;
      s->consumed.fetch_add(1);
    }
  }
  s->leave();
  s->cond.release();
}

// -------------------------------------------------------------------- event

struct EventState {
  weft::Event ev;
  // `begun` counts set() calls before they are made, `ended` after they return.
  std::atomic<long> begun{0}, ended{0};
  std::atomic<long> ok{0}, timeouts{0}, cancels{0}, spurious{0};
  std::atomic<bool> stop{false};
};

weft::Coro<void> event_waiter(EventState* s, unsigned seed) {
  std::mt19937 rng(seed);
  while (!s->stop.load()) {
    // A wait that returns must have seen a set() that had not been undone by
    // a clear() when it started. Checked only when no set() was in flight
    // while the counters were read: then every set() counted in `before` had
    // returned before is_set() was read.
    const long ended_before = s->ended.load();
    const long before = s->begun.load();
    const bool was_set = s->ev.is_set();
    try {
      co_await weft::wait_for(s->ev.wait(), micro_timeout(rng));
      s->ok.fetch_add(1);
      if (before == ended_before && !was_set && s->begun.load() == before) s->spurious.fetch_add(1);
    } catch (const weft::TimeoutError&) {
      s->timeouts.fetch_add(1);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&s->cancels);
    }
    if (rng() % 8 == 0) co_await yield_point(&s->cancels);
  }
}

// ------------------------------------------------------------ stream reader

/// Lines of 0-80 lowercase letters, about `bytes` in all.
std::string line_data(std::size_t bytes, std::mt19937& rng) {
  std::string data;
  while (data.size() < bytes) {
    const std::size_t len = rng() % 81;
    for (std::size_t i = 0; i < len; ++i) data.push_back(static_cast<char>('a' + rng() % 26));
    data.push_back('\n');
  }
  return data;
}

struct ReadLedger {
  std::string got;  // the reader task's only: everything read successfully, in order
  std::atomic<long> reads{0}, timeouts{0}, cancels{0};
};

/// readexactly(1..64) and readline() through wait_for with micro timeouts
/// until EOF; what a read returned (or an IncompleteReadError's partial at
/// EOF) is appended to ledger->got.
weft::Coro<void> timed_reader(weft::StreamReader reader, ReadLedger* ledger, unsigned seed) {
  std::mt19937 rng(seed);
  while (!reader.at_eof()) {
    try {
      std::string piece;
      if (rng() % 2 == 0) {
        const auto n = static_cast<ssize_t>(1 + rng() % 64);
        try {
          piece = co_await weft::wait_for(reader.readexactly(n), micro_timeout(rng));
        } catch (const weft::IncompleteReadError& e) {
          piece = e.partial();  // EOF: the rest, consumed by the error
        }
      } else {
        piece = co_await weft::wait_for(reader.readline(), micro_timeout(rng));
      }
      ledger->got += piece;
      ledger->reads.fetch_add(1);
    } catch (const weft::TimeoutError&) {
      ledger->timeouts.fetch_add(1);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&ledger->cancels);
    }
  }
}

/// Feeds `data` into the standalone `reader` in random chunks of 1-300 bytes.
weft::Coro<void> chunk_feeder(weft::StreamReader reader, const std::string* data, unsigned seed) {
  std::mt19937 rng(seed);
  std::size_t pos = 0;
  while (pos < data->size()) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 300, data->size() - pos);
    reader.feed_data(std::string_view(*data).substr(pos, n));
    pos += n;
    const unsigned pause = rng() % 4;
    if (pause == 0)
      co_await weft::sleep(Micros(rng() % 100));
    else if (pause == 1)
      co_await weft::sleep(std::chrono::nanoseconds(0));
  }
  reader.feed_eof();
}

/// Where the first difference between `a` and `b` is, for a failure message.
std::string first_difference(const std::string& got, const std::string& sent) {
  std::size_t i = 0;
  while (i < got.size() && i < sent.size() && got[i] == sent[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, sent " + std::to_string(sent.size()) +
         ", first difference at byte " + std::to_string(i);
}

// ---------------------------------------------------- foreign-thread future

/// Futures handed to a std::thread, which completes each with its round
/// number (or finds it already cancelled).
struct FutureChannel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<int, weft::Future<int>>> pending;
  bool closed = false;
  std::atomic<long> delivered{0}, returned{0};
  std::atomic<bool> finished{false};

  void push(int round, weft::Future<int> fut) {
    {
      std::lock_guard lock(mu);
      pending.emplace_back(round, std::move(fut));
    }
    cv.notify_one();
  }
  void close() {
    {
      std::lock_guard lock(mu);
      closed = true;
    }
    cv.notify_one();
  }
  void serve(unsigned seed) {
    std::mt19937 rng(seed);
    for (;;) {
      std::unique_lock lock(mu);
      cv.wait(lock, [this] { return closed || !pending.empty(); });
      if (pending.empty()) break;
      auto [round, fut] = std::move(pending.front());
      pending.pop_front();
      lock.unlock();
      if (rng() % 4 == 0) {  // sometimes race the consumer's timeout
        const auto until = std::chrono::steady_clock::now() + Micros(rng() % 150);
        while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
      }
      try {
        fut.set_result(round);
        delivered.fetch_add(1);
      } catch (const weft::InvalidStateError&) {
        returned.fetch_add(1);
      }
    }
    finished.store(true);
  }
};

enum class RoundEnd : std::uint8_t { none, received, timed_out, cancelled };

struct FutureLedger {
  std::vector<RoundEnd> outcome;  // the consumer's only
  std::vector<weft::Future<int>> futures;
  std::atomic<long> wrong_value{0}, timeouts{0}, cancels{0};
};

weft::Coro<void> future_consumer(FutureChannel* ch, FutureLedger* ledger, int rounds,
                                 unsigned seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < rounds; ++i) {
    weft::Future<int> fut;
    ledger->futures.push_back(fut);
    ch->push(i, fut);
    if (rng() % 4 == 0) co_await yield_point(&ledger->cancels);  // sometimes set before awaited
    try {
      int v = co_await weft::wait_for(fut, micro_timeout(rng));
      if (v != i) ledger->wrong_value.fetch_add(1);
      ledger->outcome[i] = RoundEnd::received;
    } catch (const weft::TimeoutError&) {
      ledger->timeouts.fetch_add(1);
      ledger->outcome[i] = RoundEnd::timed_out;
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&ledger->cancels);
      ledger->outcome[i] = RoundEnd::cancelled;
    }
  }
}

// -------------------------------------------------------------------- sleep

struct SleepLedger {
  std::atomic<long> attempts{0}, ok{0}, timeouts{0}, cancels{0}, wrong_value{0};
};

weft::Coro<void> timed_sleeper(SleepLedger* ledger, int rounds, unsigned seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < rounds; ++i) {
    ledger->attempts.fetch_add(1);
    const Micros d(rng() % 201);
    try {
      if (rng() % 2 == 0) {
        co_await weft::wait_for(weft::sleep(d), micro_timeout(rng));
      } else {
        int v = co_await weft::wait_for(weft::sleep(d, i), micro_timeout(rng));
        if (v != i) ledger->wrong_value.fetch_add(1);
      }
      ledger->ok.fetch_add(1);
    } catch (const weft::TimeoutError&) {
      ledger->timeouts.fetch_add(1);
    } catch (const weft::CancelledError&) {
      uncancel_and_count(&ledger->cancels);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- the tests

WEFT_TEST_P(ExactlyOnce, QueueGetPutDeliverEveryItemOnce) {
  co_await queue_exactly_once<weft::Queue<int>>(workers, 1);
}

WEFT_TEST_P(ExactlyOnce, LifoQueueGetPutDeliverEveryItemOnce) {
  co_await queue_exactly_once<weft::LifoQueue<int>>(workers, 2);
}

WEFT_TEST_P(ExactlyOnce, PriorityQueueGetPutDeliverEveryItemOnce) {
  co_await queue_exactly_once<weft::PriorityQueue<int>>(workers, 3);
}

// 4 producers put `total` distinct ints; 6 consumers get them through tasks
// of their own (`create_task(q.get())`) awaited with wait_for(task, t) or
// wait_for(gather(a, b), t), and are cancelled at random. Every item is
// returned or kept as the result of a task the consumer holds, exactly once.
WEFT_TEST_P(ExactlyOnce, TasksOfGetUnderTimedWaitForAndGatherKeepTheirItems) {
  const unsigned test = 13;
  const unsigned seed = seed_for(workers, test, 0);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  const int total = static_cast<int>(scaled(4000));
  weft::Queue<int> q(2);
  QueueLedger put_ledger(total);
  TaskGetLedger ledger(total);
  std::vector<weft::Task<void>> producers, consumers;
  std::vector<weft::TaskRef> victims;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  for (unsigned p = 0; p < 4; ++p) {
    std::vector<int> mine;
    for (int i = static_cast<int>(p); i < total; i += 4) mine.push_back(i);
    producers.push_back(weft::create_task(
        queue_producer(&q, &put_ledger, std::move(mine), seed_for(workers, test, 1 + p))));
  }
  for (unsigned c = 0; c < 6; ++c) {
    consumers.push_back(weft::create_task(
        begun(task_get_consumer(&q, &ledger, seed_for(workers, test, 10 + c)), &started)));
    victims.emplace_back(consumers.back());
  }
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  for (auto& p : producers) co_await settle(p);
  std::function<bool()> drained = [&q] { return q.empty(); };
  const bool emptied = co_await until(drained);
  const long sent = co_await cancels.stop();
  ledger.stop.store(true);
  co_await finish_all(consumers);
  EXPECT_TRUE(emptied) << "the consumers did not empty the queue";
  std::vector<int> left(total, 0);
  while (!q.empty()) {
    int v = q.get_nowait();
    if (v >= 0 && v < total) left[v]++;
  }
  CO_ASSERT_EQ(ledger.out_of_range.load(), 0);
  int missing = 0, duplicated = 0;
  for (int v = 0; v < total; ++v) {
    const int got = ledger.received[v].load() + left[v];
    missing += got == 0;
    duplicated += got > 1;
  }
  EXPECT_EQ(missing, 0) << "items lost: taken by a task whose item was not handed over";
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(ledger.timeout_with_value.load(), 0)
      << "wait_for(task, t) raised TimeoutError although the task had finished with a value";
  ::testing::Test::RecordProperty("timeouts", std::to_string(ledger.timeouts.load()));
  ::testing::Test::RecordProperty("recovered", std::to_string(ledger.recovered.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// 16 tasks x 400 timed acquires: mutual exclusion holds, and a timed-out or
// cancelled acquire never leaves the lock held.
WEFT_TEST_P(ExactlyOnce, LockTimedAcquireNeverLeavesItHeld) {
  weft::Lock lock;
  PermitLedger ledger;
  co_await run_permit_users(&lock, 1, &ledger, workers, 4);
  CO_ASSERT_TRUE(!lock.locked());
  co_await lock.acquire();  // free: the fast path
  CO_ASSERT_TRUE(lock.locked());
  CO_ASSERT_EQ(ledger.guarded, ledger.acquired.load());
  lock.release();
  CO_ASSERT_TRUE(!lock.locked());
}

// The same with Semaphore(3): afterwards exactly three permits are free.
WEFT_TEST_P(ExactlyOnce, SemaphoreTimedAcquireKeepsEveryPermit) {
  weft::Semaphore sem(3);
  PermitLedger ledger;
  co_await run_permit_users(&sem, 3, &ledger, workers, 5);
  CO_ASSERT_TRUE(!sem.locked());
  int got = 0;
  for (int i = 0; i < 3; ++i) {
    try {
      co_await weft::wait_for(sem.acquire(), 5s);  // 5 s: a hang guard only
      ++got;
    } catch (const weft::TimeoutError&) {
    }
  }
  CO_ASSERT_EQ(got, 3);
  CO_ASSERT_TRUE(sem.locked());  // a fourth acquire would wait...
  bool fourth_timed_out = false;
  try {
    co_await weft::wait_for(sem.acquire(), 1ms);
  } catch (const weft::TimeoutError&) {
    fourth_timed_out = true;
  }
  CO_ASSERT_TRUE(fourth_timed_out);  // ...and does
  for (int i = 0; i < 3; ++i) sem.release();
  CO_ASSERT_TRUE(!sem.locked());
}

// Consumers take the lock and wait for items through timed acquire() and
// timed wait(), cancelled at random: every wait() ends holding the lock
// (never lost, never held twice) and every item is consumed exactly once.
WEFT_TEST_P(ExactlyOnce, ConditionTimedWaitKeepsTheLockAndEveryItem) {
  const unsigned test = 6;
  ::testing::Test::RecordProperty("seed", std::to_string(seed_for(workers, test, 0)));
  CondState s;
  std::vector<weft::Task<void>> consumers;
  std::vector<weft::TaskRef> victims;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  for (unsigned i = 0; i < 6; ++i) {
    consumers.push_back(
        weft::create_task(begun(cond_consumer(&s, seed_for(workers, test, 1 + i)), &started)));
    victims.emplace_back(consumers.back());
  }
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  std::mt19937 rng(seed_for(workers, test, 0));
  const long total = scaled(4000);
  long produced = 0;
  for (long i = 0; i < total; ++i) {
    if (!co_await acquire_or_fail(&s.cond)) break;
    ++produced;
    s.enter();
    ++s.items;
    if (rng() % 8 == 0)
      s.cond.notify_all();
    else
      s.cond.notify(1);
    s.leave();
    s.cond.release();
    const unsigned pause = rng() % 16;
    if (pause < 4)
      co_await weft::sleep(std::chrono::nanoseconds(0));
    else if (pause == 4)  // let the consumers wait (and time out)
      co_await weft::sleep(Micros(rng() % 100));
  }
  std::function<bool()> all_consumed = [&] { return s.consumed.load() == produced; };
  const bool consumed = co_await until(all_consumed);
  const long sent = co_await cancels.stop();
  s.stop.store(true);
  co_await finish_all(consumers);
  EXPECT_TRUE(consumed);
  CO_ASSERT_EQ(produced, total);
  CO_ASSERT_EQ(s.violations.load(), 0);
  CO_ASSERT_EQ(s.holders.load(), 0);
  CO_ASSERT_TRUE(!s.cond.locked());
  CO_ASSERT_EQ(s.consumed.load(), total);
  CO_ASSERT_EQ(s.items, 0);
  // A lone timed wait: TimeoutError, with the lock held again.
  CO_ASSERT_TRUE(co_await acquire_or_fail(&s.cond));
  bool timed_out = false;
  try {
    co_await weft::wait_for(s.cond.wait(), 1ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  CO_ASSERT_TRUE(s.cond.locked());
  s.cond.release();
  ::testing::Test::RecordProperty("timeouts", std::to_string(s.timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// One item at a time, each announced by a single notify(1), while bystanders
// wait with micro timeouts and are cancelled at random: a notification that
// reaches a waiter which then times out or is cancelled passes on, so every
// item reaches one of the untimed consumers (a lost one would stall it).
WEFT_TEST_P(ExactlyOnce, ConditionNotifyIsNeverLostToATimedOutWaiter) {
  const unsigned test = 7;
  ::testing::Test::RecordProperty("seed", std::to_string(seed_for(workers, test, 0)));
  CondState s;
  std::vector<weft::Task<void>> tasks;
  std::vector<weft::TaskRef> victims;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  for (unsigned i = 0; i < 2; ++i) {
    tasks.push_back(weft::create_task(begun(cond_untimed_consumer(&s), &started)));
    victims.emplace_back(tasks.back());
  }
  for (unsigned i = 0; i < 6; ++i) {
    tasks.push_back(
        weft::create_task(begun(cond_bystander(&s, seed_for(workers, test, 1 + i)), &started)));
    victims.emplace_back(tasks.back());
  }
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  std::mt19937 rng(seed_for(workers, test, 0));
  const long total = scaled(1000);
  bool all = true;
  for (long i = 0; i < total && all; ++i) {
    all = co_await acquire_or_fail(&s.cond);
    if (!all) break;
    s.enter();
    ++s.items;
    s.cond.notify(1);
    s.leave();
    s.cond.release();
    std::function<bool()> taken = [&s, i] { return s.consumed.load() == i + 1; };
    all = co_await until(taken);
    EXPECT_TRUE(all) << "item " << i << " was notified once and never consumed";
    if (rng() % 2 == 0) co_await weft::sleep(Micros(rng() % 200));  // bystanders time out
  }
  const long sent = co_await cancels.stop();
  s.stop.store(true);
  if (co_await acquire_or_fail(&s.cond)) {
    s.cond.notify_all();
    s.cond.release();
  }
  co_await finish_all(tasks);
  CO_ASSERT_TRUE(all);
  CO_ASSERT_EQ(s.violations.load(), 0);
  CO_ASSERT_EQ(s.consumed.load(), total);
  CO_ASSERT_TRUE(!s.cond.locked());
  ::testing::Test::RecordProperty("timeouts", std::to_string(s.timeouts.load()));
  ::testing::Test::RecordProperty("renotified", std::to_string(s.renotified.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// Timed waits on an Event that a setter toggles: no wait returns without a
// set() to wake it, none hangs, and after the stress every waiter blocked on a
// cleared event is released by one set().
WEFT_TEST_P(ExactlyOnce, EventTimedWaitWithSetClearToggling) {
  const unsigned test = 8;
  ::testing::Test::RecordProperty("seed", std::to_string(seed_for(workers, test, 0)));
  EventState s;
  std::vector<weft::Task<void>> waiters;
  std::vector<weft::TaskRef> victims;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  for (unsigned i = 0; i < 8; ++i) {
    waiters.push_back(
        weft::create_task(begun(event_waiter(&s, seed_for(workers, test, 1 + i)), &started)));
    victims.emplace_back(waiters.back());
  }
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  std::mt19937 rng(seed_for(workers, test, 0));
  const long toggles = scaled(1000);
  for (long i = 0; i < toggles; ++i) {
    s.begun.fetch_add(1);
    s.ev.set();
    s.ended.fetch_add(1);
    co_await weft::sleep(rng() % 4 == 0 ? Micros(rng() % 100) : Micros(0));
    s.ev.clear();
    co_await weft::sleep(rng() % 4 == 0 ? Micros(rng() % 100) : Micros(0));
  }
  const long sent = co_await cancels.stop();
  s.stop.store(true);
  for (auto& w : waiters) co_await settle(w);
  EXPECT_EQ(s.spurious.load(), 0) << "a wait() returned with no set() to wake it";

  // Every waiter blocked on the cleared event returns after one set().
  s.ev.clear();
  std::vector<weft::Task<void>> blocked;
  std::atomic<int> released{0}, timed_out{0};
  for (int i = 0; i < 8; ++i) {
    auto one = [](weft::Event* ev, std::atomic<int>* released,
                  std::atomic<int>* timed_out) -> weft::Coro<void> {
      try {
        co_await weft::wait_for(ev->wait(), 20s);  // a hang guard only
        released->fetch_add(1);
      } catch (const weft::TimeoutError&) {
        timed_out->fetch_add(1);
      }
    };
    blocked.push_back(weft::create_task(one(&s.ev, &released, &timed_out)));
  }
  co_await weft::testing::ticks(10);
  s.ev.set();
  for (auto& b : blocked) co_await b;
  CO_ASSERT_EQ(released.load(), 8);
  CO_ASSERT_EQ(timed_out.load(), 0);
  ::testing::Test::RecordProperty("ok", std::to_string(s.ok.load()));
  ::testing::Test::RecordProperty("timeouts", std::to_string(s.timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// readexactly()/readline() under micro timeouts on a standalone reader fed in
// random chunks: bytes read before a timeout stay in the reader, so the
// concatenation of every successful read is exactly what was fed, in order.
WEFT_TEST_P(ExactlyOnce, StreamReaderTimedReadsKeepEveryByte) {
  const unsigned test = 9;
  const unsigned seed = seed_for(workers, test, 0);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::mt19937 rng(seed);
  const std::string data = line_data(static_cast<std::size_t>(scaled(200000)), rng);
  weft::StreamReader reader;
  ReadLedger ledger;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  auto read_task =
      weft::create_task(begun(timed_reader(reader, &ledger, seed_for(workers, test, 1)), &started));
  auto feed_task = weft::create_task(chunk_feeder(reader, &data, seed_for(workers, test, 2)));
  std::vector<weft::TaskRef> victims{weft::TaskRef(read_task)};
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  co_await feed_task;
  co_await settle(read_task);
  const long sent = co_await cancels.stop();
  CO_ASSERT_TRUE(read_task.done());
  CO_ASSERT_TRUE(reader.at_eof());
  EXPECT_TRUE(ledger.got == data) << first_difference(ledger.got, data);
  ::testing::Test::RecordProperty("reads", std::to_string(ledger.reads.load()));
  ::testing::Test::RecordProperty("timeouts", std::to_string(ledger.timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// The same over a loopback TCP connection, with a small reader limit so that
// the transport pauses and resumes reading; the server writes the data in
// random chunks.
WEFT_TEST_P(ExactlyOnce, StreamReaderTimedReadsOverLoopbackKeepEveryByte) {
  const unsigned test = 10;
  const unsigned seed = seed_for(workers, test, 0);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::mt19937 rng(seed);
  auto data =
      std::make_shared<const std::string>(line_data(static_cast<std::size_t>(scaled(100000)), rng));
  const unsigned writer_seed = seed_for(workers, test, 2);
  weft::ClientHandler handler = [data, writer_seed](weft::StreamReader,
                                                    weft::StreamWriter w) -> weft::Coro<void> {
    std::mt19937 wrng(writer_seed);
    std::size_t pos = 0;
    while (pos < data->size()) {
      const std::size_t n = std::min<std::size_t>(1 + wrng() % 1000, data->size() - pos);
      w.write(std::string_view(*data).substr(pos, n));
      pos += n;
      co_await w.drain();
      if (wrng() % 2 == 0) co_await weft::sleep(Micros(wrng() % 100));
    }
    w.close();
    co_await w.wait_closed();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  weft::ConnectOptions options;
  options.limit = 512;
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets()[0].port(), options);
  ReadLedger ledger;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  auto read_task =
      weft::create_task(begun(timed_reader(r, &ledger, seed_for(workers, test, 1)), &started));
  std::vector<weft::TaskRef> victims{weft::TaskRef(read_task)};
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  co_await settle(read_task);
  const long sent = co_await cancels.stop();
  w.close();
  server.close();
  co_await server.wait_closed();
  CO_ASSERT_TRUE(read_task.done());
  EXPECT_TRUE(ledger.got == *data) << first_difference(ledger.got, *data);
  ::testing::Test::RecordProperty("reads", std::to_string(ledger.reads.load()));
  ::testing::Test::RecordProperty("timeouts", std::to_string(ledger.timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// A fresh Future per round, completed by a foreign std::thread while the
// consumer awaits it through wait_for with a micro timeout (and is cancelled
// at random). A value the thread delivered is received, or, when the
// consumer was cancelled, still in the future; a timeout never drops one.
WEFT_TEST_P(ExactlyOnce, FutureSetFromAForeignThreadIsReceivedOnce) {
  const unsigned test = 11;
  ::testing::Test::RecordProperty("seed", std::to_string(seed_for(workers, test, 0)));
  const int rounds = static_cast<int>(scaled(2000));
  FutureChannel ch;
  FutureLedger ledger;
  ledger.outcome.assign(rounds, RoundEnd::none);
  ledger.futures.reserve(rounds);
  std::thread setter([&ch, seed = seed_for(workers, test, 1)] { ch.serve(seed); });
  struct Joiner {  // also on an early return: the thread must not outlive ch
    FutureChannel* ch;
    std::thread* t;
    ~Joiner() {
      ch->close();
      if (t->joinable()) t->join();
    }
  } joiner{&ch, &setter};
  std::atomic<int> started{0};  // victims that have begun (see begun())
  auto consumer = weft::create_task(
      begun(future_consumer(&ch, &ledger, rounds, seed_for(workers, test, 2)), &started));
  std::vector<weft::TaskRef> victims{weft::TaskRef(consumer)};
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99), 1000);
  co_await settle(consumer);
  const long sent = co_await cancels.stop();
  ch.close();
  std::function<bool()> thread_done = [&ch] { return ch.finished.load(); };
  const bool finished = co_await until(thread_done);
  setter.join();
  CO_ASSERT_TRUE(finished);
  CO_ASSERT_EQ(ledger.wrong_value.load(), 0);

  long received = 0, kept = 0, dropped_by_timeout = 0, valued = 0;
  for (int i = 0; i < rounds; ++i) {
    const weft::Future<int>& fut = ledger.futures[i];
    CO_ASSERT_TRUE(fut.done());
    const bool has_value = !fut.cancelled();
    valued += has_value;
    switch (ledger.outcome[i]) {
      case RoundEnd::received:
        ++received;
        CO_ASSERT_TRUE(has_value);
        break;
      case RoundEnd::timed_out:
        if (has_value) ++dropped_by_timeout;  // wait_for raised although a value was there
        break;
      case RoundEnd::cancelled:
        if (has_value) ++kept;  // left in the future, readable with result()
        break;
      case RoundEnd::none:
        ADD_FAILURE() << "round " << i << " has no outcome";
        co_return;
    }
  }
  EXPECT_EQ(dropped_by_timeout, 0) << "wait_for raised TimeoutError with the value already set";
  EXPECT_EQ(ch.delivered.load(), valued);
  EXPECT_EQ(ch.delivered.load(), received + kept);
  EXPECT_EQ(ch.delivered.load() + ch.returned.load(), rounds);
  ::testing::Test::RecordProperty("delivered", std::to_string(ch.delivered.load()));
  ::testing::Test::RecordProperty("returned", std::to_string(ch.returned.load()));
  ::testing::Test::RecordProperty("timeouts", std::to_string(ledger.timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// wait_for(weft::sleep(d), t) with d in 0-200 us and t in 1-200 us, with
// random cancels: never hangs, each attempt ends exactly one way, and a sleep
// with a result returns it.
WEFT_TEST_P(ExactlyOnce, TimedSleepsEndExactlyOneWay) {
  const unsigned test = 12;
  ::testing::Test::RecordProperty("seed", std::to_string(seed_for(workers, test, 0)));
  const int rounds = static_cast<int>(scaled(1000));
  SleepLedger ledger;
  std::vector<weft::Task<void>> sleepers;
  std::vector<weft::TaskRef> victims;
  std::atomic<int> started{0};  // victims that have begun (see begun())
  for (unsigned i = 0; i < 8; ++i) {
    sleepers.push_back(weft::create_task(
        begun(timed_sleeper(&ledger, rounds, seed_for(workers, test, 1 + i)), &started)));
    victims.emplace_back(sleepers.back());
  }
  CancelDriver cancels(std::move(victims), &started, seed_for(workers, test, 99));
  for (auto& t : sleepers) co_await settle(t);
  const long sent = co_await cancels.stop();
  CO_ASSERT_EQ(ledger.attempts.load(), 8L * rounds);
  CO_ASSERT_EQ(ledger.ok.load() + ledger.timeouts.load() + ledger.cancels.load(),
               ledger.attempts.load());
  CO_ASSERT_EQ(ledger.wrong_value.load(), 0);
  CO_ASSERT_TRUE(ledger.cancels.load() <= sent);
  ::testing::Test::RecordProperty("ok", std::to_string(ledger.ok.load()));
  ::testing::Test::RecordProperty("timeouts", std::to_string(ledger.timeouts.load()));
  ::testing::Test::RecordProperty("cancels_sent", std::to_string(sent));
}

// The plain spellings of issue 13, written exactly as asyncio users write them.
WEFT_TEST_P(ExactlyOnce, PlainSpellingsCompileAndBehave) {
  weft::Queue<int> q;
  q.put_nowait(7);
  int v = co_await weft::wait_for(q.get(), 1s);
  CO_ASSERT_EQ(v, 7);

  weft::Lock lock;
  co_await weft::wait_for(lock.acquire(), 1s);
  CO_ASSERT_TRUE(lock.locked());
  lock.release();

  q.put_nowait(8);
  auto [item, _] = co_await weft::gather(q.get(), weft::sleep(1ms));
  CO_ASSERT_EQ(item, 8);

  auto t = weft::create_task(q.get());
  q.put_nowait(9);
  int got = co_await t;
  CO_ASSERT_EQ(got, 9);

  // A get() that times out takes nothing: the next item goes to the next get().
  bool timed_out = false;
  try {
    (void)co_await weft::wait_for(q.get(), 1ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  q.put_nowait(10);
  CO_ASSERT_EQ(q.get_nowait(), 10);

  // An acquire() that times out leaves the lock to its holder, then free.
  co_await lock.acquire();
  timed_out = false;
  try {
    co_await weft::wait_for(lock.acquire(), 1ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  lock.release();
  CO_ASSERT_TRUE(!lock.locked());

  // A cancelled create_task(q.get()) leaves the item queued.
  auto waiting = weft::create_task(q.get());
  co_await weft::testing::ticks(3);
  waiting.cancel();
  CO_ASSERT_TRUE(co_await weft::testing::ended_cancelled(waiting));
  q.put_nowait(11);
  CO_ASSERT_EQ(q.get_nowait(), 11);
  CO_ASSERT_TRUE(q.empty());
}

INSTANTIATE_TEST_SUITE_P(Workers, ExactlyOnce, ::testing::Values(1u, 2u, 4u, 8u),
                         weft::testing::worker_name);

// Composition with any awaitable, and where a cancellation meets a completion
// (issue: "a completed result is never lost, and every awaitable composes").
//
// The race tests run at one worker, where the order of everything is
// asyncio's, so each one builds its race deterministically.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

class ComposeW : public weft::testing::WorkersTest {};

// ------------------------------------------------------ the asyncio spellings

WEFT_TEST_P(ComposeW, WaitForTakesAQueueGetDirectly) {
  weft::Queue<int> q;
  q.put_nowait(7);
  int v = co_await weft::wait_for(q.get(), 1s);
  CO_ASSERT_EQ(v, 7);
  bool timed_out = false;
  try {
    (void)co_await weft::wait_for(q.get(), 1ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  q.put_nowait(8);  // the timed-out get left no reservation behind
  CO_ASSERT_EQ(q.get_nowait(), 8);
}

WEFT_TEST_P(ComposeW, WaitForTakesALockAcquireDirectly) {
  weft::Lock lock;
  co_await weft::wait_for(lock.acquire(), 1s);
  CO_ASSERT_TRUE(lock.locked());
  bool timed_out = false;
  try {
    co_await weft::wait_for(lock.acquire(), 1ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  lock.release();
  CO_ASSERT_TRUE(!lock.locked());  // the timed-out acquire holds nothing
  co_await weft::wait_for(lock.acquire(), 1s);
  lock.release();
}

WEFT_TEST_P(ComposeW, GatherTakesAQueueGetAndASleep) {
  weft::Queue<int> q;
  q.put_nowait(3);
  auto [item, _] = co_await weft::gather(q.get(), weft::sleep(1ms));
  CO_ASSERT_EQ(item, 3);
}

WEFT_TEST_P(ComposeW, CreateTaskTakesAQueueGet) {
  weft::Queue<int> q;
  auto t = weft::create_task(q.get());
  q.put_nowait(11);
  CO_ASSERT_EQ(co_await t, 11);
  weft::Lock lock;
  auto acquire = weft::create_task(lock.acquire());
  co_await acquire;
  CO_ASSERT_TRUE(lock.locked());
  lock.release();
}

WEFT_TEST_P(ComposeW, ShieldAndTaskGroupTakeAnyAwaitable) {
  weft::Queue<int> q;
  q.put_nowait(1);
  q.put_nowait(2);
  int a = co_await weft::shield(q.get());
  CO_ASSERT_EQ(a, 1);
  int b = 0;
  co_await weft::task_group([&](weft::TaskGroup& tg) -> weft::Coro<void> {
    auto t = tg.create_task(q.get());
    b = co_await t;
  });
  CO_ASSERT_EQ(b, 2);
}

/// A standard C++ awaitable that is not weft's: ready at once with a value.
struct ReadyAwaitable {
  int value;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int await_resume() const noexcept { return value; }
};

WEFT_TEST_P(ComposeW, ForeignAwaitablesCompose) {
  ReadyAwaitable r{5};
  int v = co_await weft::wait_for(r, 1s);
  CO_ASSERT_EQ(v, 5);
  auto t = weft::create_task(r);
  CO_ASSERT_EQ(co_await t, 5);
  auto [x, y] = co_await weft::gather(r, weft::sleep(0ms));
  CO_ASSERT_EQ(x, 5);
}

WEFT_TEST_P(ComposeW, AsCompletedElementsAreAwaitedAsLvalues) {
  std::vector<weft::Task<int>> ts;
  ts.push_back(weft::create_task(weft::testing::gated(weft::Future<void>(), 0)));
  ts.clear();
  weft::Future<void> g1, g2;
  ts.push_back(weft::create_task(weft::testing::gated(g1, 1)));
  ts.push_back(weft::create_task(weft::testing::gated(g2, 2)));
  g2.set_result();
  g1.set_result();
  int sum = 0;
  for (auto next : weft::as_completed(ts)) {
    int v = co_await next;
    sum += v;
  }
  CO_ASSERT_EQ(sum, 3);
}

weft::Coro<int> quick_value(int v) { co_return v; }

weft::Coro<std::string> read_line_after(weft::Future<void> gate) {
  co_await gate;
  co_return "line";
}

weft::Coro<void> heartbeat_forever() {
  for (;;) co_await weft::sleep(1h);
}

WEFT_TEST_P(ComposeW, WaitOverTasksOfDifferentTypes) {
  static_assert(weft::FIRST_COMPLETED == weft::ReturnWhen::FIRST_COMPLETED);
  static_assert(weft::FIRST_EXCEPTION == weft::ReturnWhen::FIRST_EXCEPTION);
  static_assert(weft::ALL_COMPLETED == weft::ReturnWhen::ALL_COMPLETED);
  weft::Future<void> gate;
  auto reader = weft::create_task(read_line_after(gate));
  auto heartbeat = weft::create_task(heartbeat_forever());
  gate.set_result();
  // `weft::wait({reader, heartbeat}, ...)` works too, but GCC 12 rejects a
  // braced list inside a co_await expression.
  std::vector<weft::TaskRef> both{reader, heartbeat};
  auto r = co_await weft::wait(both, weft::FIRST_COMPLETED);
  CO_ASSERT_TRUE(r.is_done(reader));
  CO_ASSERT_TRUE(!r.is_done(heartbeat));
  CO_ASSERT_EQ(r.pending.size(), 1u);
  CO_ASSERT_TRUE(r.pending[0] == heartbeat);
  CO_ASSERT_EQ(reader.result(), "line");
  heartbeat.cancel();
  std::vector<weft::Task<int>> same;
  same.push_back(weft::create_task(weft::testing::gated(gate, 4)));
  auto all = co_await weft::wait(same, weft::ALL_COMPLETED);
  CO_ASSERT_EQ(all.done.size(), 1u);
}

// ------------------------------------------- a cancellation meets a completion

/// A value that is ready when the deadline fires is returned: the future is
/// set by a timer due at the same instant as the timeout, and runs first.
WEFT_TEST(Compose, WaitForReturnsAResultReadyWhenTheDeadlineFires) {
  weft::EventLoop& loop = weft::get_running_loop();
  for (int round = 0; round < 20; ++round) {
    weft::Future<int> fut;
    weft::TimePoint when = loop.time() + 2ms;
    (void)loop.call_at(when, [fut]() mutable { fut.set_result(42); });
    int v = co_await weft::timeout_at(when, fut);
    CO_ASSERT_EQ(v, 42);
  }
}

WEFT_TEST(Compose, TimeoutScopeReturnsAQueueItemReadyWhenTheDeadlineFires) {
  weft::EventLoop& loop = weft::get_running_loop();
  weft::Queue<int> q;
  for (int round = 0; round < 20; ++round) {
    weft::TimePoint when = loop.time() + 2ms;
    (void)loop.call_at(when, [&q, round] { q.put_nowait(round); });
    int v = co_await weft::timeout_at(when, q.get());
    CO_ASSERT_EQ(v, round);
  }
  CO_ASSERT_EQ(q.qsize(), 0u);
}

weft::Coro<void> shielded_then_sleep(weft::Future<int> fut, int* got) {
  *got = co_await weft::shield(fut);
  co_await weft::sleep(1h);
}

/// The shield's outer completes, then the task is cancelled before it runs:
/// the value is returned and the cancellation reaches the next await.
WEFT_TEST(Compose, ShieldDeliversAValueThatArrivedBeforeTheCancellation) {
  weft::Future<int> fut;
  int got = 0;
  auto t = weft::create_task(shielded_then_sleep(fut, &got));
  co_await weft::sleep(0ms);  // t waits on the shield
  fut.set_result(9);          // queues the shield's callback
  co_await weft::sleep(0ms);  // the callback completes the outer and wakes t
  t.cancel();
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  CO_ASSERT_TRUE(cancelled);
  CO_ASSERT_EQ(got, 9);
}

weft::Coro<void> gather_then_sleep(weft::Queue<int>* q, int* got) {
  auto [a, b] = co_await weft::gather(q->get(), q->get());
  *got = a + b;
  co_await weft::sleep(1h);
}

WEFT_TEST(Compose, GatherDeliversResultsThatArrivedBeforeTheCancellation) {
  weft::Queue<int> q;
  int got = 0;
  auto t = weft::create_task(gather_then_sleep(&q, &got));
  co_await weft::sleep(0ms);  // t in gather, both children waiting in get()
  q.put_nowait(1);
  q.put_nowait(2);
  // The children take the items, their done callbacks complete the outer,
  // which wakes t; cancel t as soon as the items are gone but before t ran.
  while (q.qsize() != 0 || got == 0) {
    co_await weft::sleep(0ms);
    if (q.qsize() == 0 && !t.done()) {
      t.cancel();
      break;
    }
  }
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  CO_ASSERT_TRUE(cancelled);
  CO_ASSERT_EQ(got, 3);
}

weft::Coro<int> spin_then_return(std::atomic<int>* phase) {
  phase->store(1);
  while (phase->load() != 2) std::this_thread::yield();
  co_return 42;
}

/// A cancel from another thread that reaches a task during its last step is
/// ordered after that step: the body's value is kept.
WEFT_TEST_P(ComposeW, CancelFromAnotherThreadDuringTheLastStepKeepsTheValue) {
  std::atomic<int> phase{0};
  auto t = weft::create_task(spin_then_return(&phase));
  std::thread canceller([&phase, ref = weft::TaskRef(t)] {
    while (phase.load() != 1) std::this_thread::yield();
    (void)ref.cancel();
    phase.store(2);
  });
  if (workers == 1) {
    // The only worker runs t: give it the worker.
    co_await weft::sleep(0ms);
  }
  int v = co_await t;
  canceller.join();
  CO_ASSERT_EQ(v, 42);
  CO_ASSERT_TRUE(!t.cancelled());
}

weft::Coro<int> cancel_self_then_return() {
  (void)weft::current_task().cancel();
  co_return 42;
}

WEFT_TEST(Compose, SelfCancelDuringTheLastStepStillEndsCancelled) {
  auto t = weft::create_task(cancel_self_then_return());
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  CO_ASSERT_TRUE(cancelled && t.cancelled());  // TASK-09
}

weft::Coro<void> produce_forever(weft::Queue<int>* q, std::atomic<bool>* stop, long* produced) {
  while (!stop->load()) {
    q->put_nowait(1);
    ++*produced;
    co_await weft::sleep(0ms);
  }
}

weft::Coro<void> consume_within(weft::Queue<int>* q, long* consumed) {
  for (;;) {
    *consumed += co_await q->get();
  }
}

/// A producer that refills the queue every iteration keeps the consumer's
/// await completing just before each expiry check: the timeout still fires
/// (within one step of the deadline) and every item is counted once.
WEFT_TEST_P(ComposeW, ATimeoutFiresAlthoughItsAwaitKeepsCompleting) {
  weft::Queue<int> q;
  std::atomic<bool> stop{false};
  long produced = 0, consumed = 0;
  auto producer = weft::create_task(produce_forever(&q, &stop, &produced));
  auto start = std::chrono::steady_clock::now();
  bool timed_out = false;
  try {
    co_await weft::timeout(20ms, [&](weft::Timeout&) { return consume_within(&q, &consumed); });
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  auto took = std::chrono::steady_clock::now() - start;
  stop.store(true);
  co_await producer;
  CO_ASSERT_TRUE(timed_out);
  CO_ASSERT_TRUE(took < 10s);
  CO_ASSERT_EQ(consumed + static_cast<long>(q.qsize()), produced);
}

/// A standard awaitable completed by another thread after a delay.
struct ThreadAwaitable {
  int value;
  std::chrono::milliseconds delay;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    std::thread([h, d = delay] {
      std::this_thread::sleep_for(d);
      h.resume();
    }).detach();
  }
  int await_resume() const noexcept { return value; }
};

/// A foreign awaitable cannot be cancelled: wait_for waits for it, and the
/// value it produced is returned rather than discarded.
WEFT_TEST_P(ComposeW, AForeignAwaitablePastItsDeadlineStillHandsOverItsValue) {
  ThreadAwaitable slow{42, 30ms};
  int v = co_await weft::wait_for(slow, 1ms);
  CO_ASSERT_EQ(v, 42);
}

weft::Coro<int> adds_a_sibling(weft::TaskGroup* tg, std::atomic<int>* ran) {
  ran->fetch_add(1);
  auto sibling = tg->create_task(quick_value(5));
  co_return co_await sibling;
}

WEFT_TEST_P(ComposeW, AnEagerTaskGroupChildMayAddToItsGroupInItsFirstStep) {
  std::atomic<int> ran{0};
  int got = 0;
  weft::TaskOptions eager;
  eager.eager = true;
  co_await weft::task_group([&](weft::TaskGroup& tg) -> weft::Coro<void> {
    auto t = tg.create_task(adds_a_sibling(&tg, &ran), eager);
    got = co_await t;
  });
  CO_ASSERT_EQ(ran.load(), 1);
  CO_ASSERT_EQ(got, 5);
}

// ------------------------------------- gather and shield give back what they took

/// The next item, once it is unreserved: a put hands the item to a waiting
/// get, which counts in qsize() until that get has run and given it back.
template <class Q>
weft::Coro<int> item_given_back(Q* q) {
  for (int i = 0; i < 100; ++i) {
    try {
      co_return q->get_nowait();
    } catch (const weft::QueueEmpty&) {
    }
    co_await weft::sleep(0ms);
  }
  throw weft::RuntimeError("the item was not given back");
}

weft::Coro<int> fails_at_once() {
  throw weft::ValueError("boom");
  co_return 0;
}

WEFT_TEST(Compose, GatherThatRaisesGivesBackTheItemAGetChildTook) {
  weft::Queue<int> q;
  q.put_nowait(1);
  q.put_nowait(2);
  bool raised = false;
  try {
    // The get child takes 1 in its first step; the second child fails.
    (void)co_await weft::gather(q.get(), fails_at_once());
  } catch (const weft::ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
  CO_ASSERT_EQ(q.qsize(), 2u);
  CO_ASSERT_EQ(q.get_nowait(), 1);  // back at the front, where it was
  CO_ASSERT_EQ(q.get_nowait(), 2);
}

WEFT_TEST(Compose, GatherThatRaisedGivesBackAnItemTakenLater) {
  weft::LifoQueue<int> q;
  bool raised = false;
  try {
    (void)co_await weft::gather(q.get(), fails_at_once());
  } catch (const weft::ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
  q.put_nowait(5);  // the get child, still waiting, takes it
  int item = co_await item_given_back(&q);
  CO_ASSERT_EQ(item, 5);
  CO_ASSERT_EQ(q.qsize(), 0u);
}

WEFT_TEST(Compose, GatherThatRaisedReleasesALockItsChildAcquiredLater) {
  weft::Lock lock;
  co_await lock.acquire();
  bool raised = false;
  try {
    co_await weft::gather(lock.acquire(), fails_at_once());
  } catch (const weft::ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
  lock.release();  // the acquire child takes the lock, and nobody receives it
  for (int i = 0; i < 10 && lock.locked(); ++i) co_await weft::sleep(0ms);
  CO_ASSERT_TRUE(!lock.locked());
  co_await weft::wait_for(lock.acquire(), 1s);
  lock.release();
}

weft::Coro<void> gather_gets(weft::Queue<int>* q, int n, bool* finished) {
  std::vector<weft::Queue<int>::GetOp> gets;
  for (int i = 0; i < n; ++i) gets.push_back(q->get());
  (void)co_await weft::gather(std::move(gets));
  *finished = true;
}

WEFT_TEST(Compose, CancelledGatherGivesBackTheItemsItsChildrenTook) {
  weft::Queue<int> q;
  bool finished = false;
  auto t = weft::create_task(gather_gets(&q, 3, &finished));
  co_await weft::sleep(0ms);  // three get children wait
  q.put_nowait(10);
  q.put_nowait(11);
  co_await weft::sleep(0ms);  // two of them take an item
  co_await weft::sleep(0ms);
  CO_ASSERT_EQ(q.qsize(), 0u);
  t.cancel();
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  CO_ASSERT_TRUE(cancelled);
  CO_ASSERT_TRUE(!finished);
  CO_ASSERT_EQ(q.qsize(), 2u);
  CO_ASSERT_EQ(q.get_nowait(), 11);  // each went back to the front, the last first
  CO_ASSERT_EQ(q.get_nowait(), 10);
}

weft::Coro<void> gather_settled_acquires(weft::Semaphore* sem) {
  (void)co_await weft::gather_settled(sem->acquire(), sem->acquire(), sem->acquire());
}

WEFT_TEST(Compose, CancelledGatherSettledReleasesSemaphorePermits) {
  weft::Semaphore sem(2);
  co_await sem.acquire();
  co_await sem.acquire();
  auto t = weft::create_task(gather_settled_acquires(&sem));
  co_await weft::sleep(0ms);  // three acquire children wait
  sem.release();
  sem.release();
  co_await weft::sleep(0ms);  // two children are granted a permit
  co_await weft::sleep(0ms);
  t.cancel();
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  CO_ASSERT_TRUE(cancelled);
  for (int i = 0; i < 10 && sem.locked(); ++i) co_await weft::sleep(0ms);
  co_await weft::wait_for(sem.acquire(), 1s);  // both permits came back
  co_await weft::wait_for(sem.acquire(), 1s);
  CO_ASSERT_TRUE(sem.locked());
}

weft::Coro<int> shielded_get(weft::Queue<int>* q) { co_return co_await weft::shield(q->get()); }

WEFT_TEST(Compose, ShieldGivesBackAnItemTakenAfterTheAwaiterWasCancelled) {
  weft::Queue<int> q;
  auto t = weft::create_task(shielded_get(&q));
  co_await weft::sleep(0ms);  // t waits on the shield, its get child on the queue
  t.cancel();
  bool cancelled = co_await weft::testing::raises_cancelled(t);
  CO_ASSERT_TRUE(cancelled);
  q.put_nowait(4);  // the shielded get goes on and takes it; nobody receives it
  int item = co_await item_given_back(&q);
  CO_ASSERT_EQ(item, 4);
  CO_ASSERT_EQ(q.qsize(), 0u);
}

struct PairConsumers {
  weft::Queue<int> q;
  std::vector<std::atomic<int>> seen;
  std::atomic<bool> stop{false};
  explicit PairConsumers(int items) : seen(static_cast<std::size_t>(items)) {}
};

/// Takes two items at a time through gather, each try bounded by a timeout
/// between 1 and 200 microseconds.
weft::Coro<void> consume_pairs(PairConsumers* s, unsigned seed) {
  unsigned x = seed;
  while (!s->stop.load()) {
    x = x * 1664525u + 1013904223u;
    auto t = std::chrono::microseconds(1 + (x >> 8) % 200);
    try {
      auto [a, b] = co_await weft::wait_for(weft::gather(s->q.get(), s->q.get()), t);
      s->seen[static_cast<std::size_t>(a)].fetch_add(1);
      s->seen[static_cast<std::size_t>(b)].fetch_add(1);
    } catch (const weft::TimeoutError&) {
    }
  }
}

WEFT_TEST(Compose, AsCompletedGivesBackWhatItsGetsTookAfterTheTimeout) {
  weft::Queue<int> q;
  q.put_nowait(1);
  std::vector<weft::Queue<int>::GetOp> gets;
  gets.push_back(q.get());
  gets.push_back(q.get());
  auto completions = weft::as_completed(std::move(gets), 1ms);
  auto it = completions.begin();
  int first = co_await *it;
  CO_ASSERT_EQ(first, 1);
  bool timed_out = false;
  try {
    (void)co_await *it;
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  q.put_nowait(2);  // the second get, still running, takes it; no element will
  int item = co_await item_given_back(&q);
  CO_ASSERT_EQ(item, 2);
}

WEFT_TEST(Compose, AbandonedAsCompletedGivesBackWhatItsGetsTook) {
  weft::Queue<int> q;
  {
    std::vector<weft::Queue<int>::GetOp> gets;
    for (int i = 0; i < 3; ++i) gets.push_back(q.get());
    auto completions = weft::as_completed(std::move(gets));
    q.put_nowait(1);
    q.put_nowait(2);
    for (int i = 0; i < 3; ++i) co_await weft::sleep(0ms);  // two gets take an item
  }  // the last handle goes: nobody can take those results any more
  int a = co_await item_given_back(&q);
  int b = co_await item_given_back(&q);
  CO_ASSERT_EQ(a + b, 3);
  q.put_nowait(3);  // the third get, still running, takes it
  int item = co_await item_given_back(&q);
  CO_ASSERT_EQ(item, 3);
}

/// Exactly-once accounting through gather over gets, with micro timeouts:
/// every item put is received by one consumer or left in the queue, once.
WEFT_TEST_P(ComposeW, GatherOfGetsUnderMicroTimeoutsLosesNoItem) {
  const int items = static_cast<int>(weft::testing::scaled(2000));
  PairConsumers s(items);
  weft::Queue<int>& q = s.q;
  std::vector<std::atomic<int>>& seen = s.seen;
  std::vector<weft::Task<void>> tasks;
  for (unsigned c = 0; c < 4; ++c)
    tasks.push_back(weft::create_task(consume_pairs(&s, 2654435761u * (c + 1))));
  for (int i = 0; i < items; ++i) {
    q.put_nowait(i);
    if (i % 16 == 0) co_await weft::sleep(std::chrono::microseconds(50));
  }
  co_await weft::sleep(5ms);
  s.stop.store(true);
  for (auto& t : tasks) co_await t;
  // A consumer can be done before the get children of its last gather: a
  // timed-out gather completes at its first cancelled child (GATH-05, as
  // asyncio's), and a child that took an item meanwhile gives it back from
  // its done callback, later. Wait for every child, then for every item to
  // be seen or back in the queue (an item really lost fails the test when
  // the wait gives up), before counting, and before `s` (the queue the
  // children wait on) goes.
  while (weft::all_tasks().size() > 1) co_await weft::sleep(1ms);
  auto accounted = [&] {
    std::size_t n = q.qsize();
    for (auto& c : seen) n += static_cast<std::size_t>(c.load());
    return n;
  };
  for (int i = 0; i < 5000 && accounted() < static_cast<std::size_t>(items); ++i)
    co_await weft::sleep(1ms);
  while (!q.empty()) seen[static_cast<std::size_t>(q.get_nowait())].fetch_add(1);
  int lost = 0, twice = 0;
  for (auto& n : seen) {
    if (n.load() == 0) ++lost;
    if (n.load() > 1) ++twice;
  }
  CO_ASSERT_EQ(lost, 0);
  CO_ASSERT_EQ(twice, 0);
}

struct PermitTakers {
  weft::Lock lock;
  weft::Semaphore sem{3};
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
};

/// Takes the lock and a permit together through gather, each try bounded by
/// a timeout between 1 and 200 microseconds.
weft::Coro<void> take_lock_and_permit(PermitTakers* s, int rounds, unsigned seed) {
  unsigned x = seed;
  for (int r = 0; r < rounds; ++r) {
    x = x * 1664525u + 1013904223u;
    auto t = std::chrono::microseconds(1 + (x >> 8) % 200);
    try {
      co_await weft::wait_for(weft::gather(s->lock.acquire(), s->sem.acquire()), t);
    } catch (const weft::TimeoutError&) {
      continue;
    }
    if (s->inside.fetch_add(1) != 0) s->overlap.store(true);
    co_await weft::sleep(0ms);
    s->inside.fetch_sub(1);
    s->sem.release();
    s->lock.release();
  }
}

/// The same for permits: a gathered acquire that times out never leaves the
/// lock held or a semaphore short.
WEFT_TEST_P(ComposeW, GatherOfAcquiresUnderMicroTimeoutsLeavesNothingHeld) {
  const int rounds = static_cast<int>(weft::testing::scaled(400));
  PermitTakers s;
  weft::Lock& lock = s.lock;
  weft::Semaphore& sem = s.sem;
  std::vector<weft::Task<void>> tasks;
  for (unsigned c = 0; c < 8; ++c)
    tasks.push_back(weft::create_task(take_lock_and_permit(&s, rounds, 40503u * (c + 7))));
  for (auto& t : tasks) co_await t;
  // The gathers' children may outlive their gathers (GATH-05): wait for them
  // before `s` goes. Give-backs from children that finished after their
  // gather are done once their callbacks ran; every permit is free again.
  while (weft::all_tasks().size() > 1) co_await weft::sleep(1ms);
  for (int i = 0; i < 100 && (lock.locked() || sem.locked()); ++i) co_await weft::sleep(1ms);
  CO_ASSERT_TRUE(!s.overlap.load());
  CO_ASSERT_TRUE(!lock.locked());
  for (int i = 0; i < 3; ++i) co_await weft::wait_for(sem.acquire(), 1s);
  CO_ASSERT_TRUE(sem.locked());
}

INSTANTIATE_TEST_SUITE_P(Workers, ComposeW, ::testing::Values(1u, 2u, 4u, 8u),
                         weft::testing::worker_name);

}  // namespace

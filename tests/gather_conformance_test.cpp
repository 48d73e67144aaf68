// Conformance tests for gather() and gather_settled(), GATH-01..09 and PROG-B /
// PROG-C of docs/asyncio-behaviours.md (issue 2).
//
// Order behaviours (GATH-02, PROG-B, PROG-C, GATH-08's timing) run at
// workers = 1; result, error and cancellation behaviours also at 2 and 8.
//
// Python-only items with no runtime test: GATH-02's "the same coroutine
// object passed several times" (a Coro is move-only, it cannot be passed
// twice; the same Task passed twice is tested instead); GATH-09's "futures
// from different loops → ValueError" (weft futures may be awaited from any
// loop of the runtime, there is no per-loop restriction to violate).
// GATH-07/08 speak of cancelling the gather future itself; weft's gather is a
// Coro, so its "future" is cancelled by cancelling the task that awaits it.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

/// A log that tasks on any worker may append to.
class Log {
 public:
  void add(std::string s) {
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(s));
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

weft::Coro<int> value_after(std::chrono::milliseconds d, int v) {
  co_await weft::sleep(d);
  co_return v;
}

weft::Coro<int> fail_after(std::chrono::milliseconds d, std::string what) {
  co_await weft::sleep(d);
  throw std::runtime_error(what);
}

weft::Coro<void> forever() { co_await weft::sleep(1h); }

class GatherW : public weft::testing::WorkersTest {};

// ---------------------------------------------------------------------------------- GATH-01

WEFT_TEST_P(GatherW, Gath01ResultsFollowArgumentOrderNotCompletionOrder) {
  // Children finish b (=1), a (=2), then c (=3).
  auto a = weft::create_task(value_after(20ms, 2));
  auto b = weft::create_task(value_after(1ms, 1));
  auto c = weft::create_task(value_after(40ms, 3));
  auto [ra, rb, rc] = co_await weft::gather(a, b, c);
  CO_ASSERT_EQ(ra, 2);
  CO_ASSERT_EQ(rb, 1);
  CO_ASSERT_EQ(rc, 3);
  // The outer completed only after the last child.
  CO_ASSERT_TRUE(a.done() && b.done() && c.done());

  std::vector<weft::Task<int>> tasks;
  tasks.push_back(weft::create_task(value_after(20ms, 2)));
  tasks.push_back(weft::create_task(value_after(1ms, 1)));
  tasks.push_back(weft::create_task(value_after(40ms, 3)));
  std::vector<int> v = co_await weft::gather(tasks);
  CO_ASSERT_TRUE((v == std::vector<int>{2, 1, 3}));
}

WEFT_TEST_P(GatherW, Gath01MixesCorosTasksFuturesAndVoid) {
  weft::Future<std::string> f;
  auto setter = weft::create_task([](weft::Future<std::string> fut) -> weft::Coro<void> {
    co_await weft::sleep(5ms);
    fut.set_result("future");
  }(f));
  auto [i, s, none] = co_await weft::gather(value_after(1ms, 7), f, weft::sleep(2ms));
  CO_ASSERT_EQ(i, 7);
  CO_ASSERT_EQ(s, std::string("future"));
  static_assert(std::is_same_v<decltype(none), std::monostate>);
  co_await setter;

  std::vector<weft::Coro<int>> coros;
  for (int k = 0; k < 5; ++k) coros.push_back(value_after(std::chrono::milliseconds(5 - k), k));
  std::vector<int> v = co_await weft::gather(std::move(coros));
  CO_ASSERT_TRUE((v == std::vector<int>{0, 1, 2, 3, 4}));
}

// ---------------------------------------------------------------------------------- GATH-02

weft::Coro<int> first_step(Log* log, std::string name, int v) {
  log->add(name);
  co_await weft::sleep(0ms);
  co_return v;
}

WEFT_TEST(Gather, Gath02CoroutinesBecomeTasksInArgumentOrder) {
  Log log;
  auto [x, y, z] = co_await weft::gather(first_step(&log, "c", 3), first_step(&log, "a", 1),
                                         first_step(&log, "b", 2));
  CO_ASSERT_EQ(x + 10 * y + 100 * z, 213);
  CO_ASSERT_TRUE((log.lines() == std::vector<std::string>{"c", "a", "b"}));
}

weft::Coro<std::string> counted(std::atomic<int>* runs, std::string v) {
  runs->fetch_add(1);
  co_await weft::sleep(1ms);
  co_return v;
}

WEFT_TEST_P(GatherW, Gath02TheSameTaskTwiceRunsOnceAndRepeatsItsResult) {
  std::atomic<int> runs{0};
  auto c = weft::create_task(counted(&runs, "abc"));
  auto d = weft::create_task(counted(&runs, "def"));
  auto [r1, r2, r3, r4] = co_await weft::gather(c, c, d, c);
  CO_ASSERT_EQ(r1, std::string("abc"));
  CO_ASSERT_EQ(r2, std::string("abc"));
  CO_ASSERT_EQ(r3, std::string("def"));
  CO_ASSERT_EQ(r4, std::string("abc"));
  CO_ASSERT_EQ(runs.load(), 2);

  std::vector<weft::Task<std::string>> v{c, d, c};
  auto rv = co_await weft::gather(v);
  CO_ASSERT_TRUE((rv == std::vector<std::string>{"abc", "def", "abc"}));
}

// ---------------------------------------------------------------------------------- GATH-03

weft::Coro<int> value_when(weft::Future<void> gate, int v) {
  co_await gate;
  co_return v;
}

weft::Coro<int> fail_when(weft::Future<void> gate, std::string what) {
  co_await gate;
  throw std::runtime_error(what);
}

WEFT_TEST_P(GatherW, Gath03FirstErrorPropagatesAtOnceAndDoesNotCancelSiblings) {
  weft::Future<void> gate;
  auto slow = weft::create_task(value_when(gate, 1));
  auto bad = weft::create_task(fail_after(1ms, "boom"));
  auto later_bad = weft::create_task(fail_when(gate, "later"));
  std::string what;
  try {
    (void)co_await weft::gather(slow, bad, later_bad);
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  CO_ASSERT_EQ(what, std::string("boom"));
  // gather raised at once: the siblings are still running and were not cancelled.
  CO_ASSERT_TRUE(!slow.done() && !later_bad.done());
  gate.set_result();
  CO_ASSERT_EQ(co_await slow, 1);
  CO_ASSERT_TRUE(!slow.cancelled());
  bool later_failed = false;
  try {
    co_await later_bad;
  } catch (const std::runtime_error&) {
    later_failed = true;
  }
  CO_ASSERT_TRUE(later_failed);
}

// ---------------------------------------------------------------------------------- GATH-04

WEFT_TEST_P(GatherW, Gath04SettledKeepsErrorsAtTheirPositionsAndWaitsForAll) {
  auto a = weft::create_task(value_after(5ms, 3));
  auto b = weft::create_task(value_after(1ms, 1));
  auto c = weft::create_task(fail_after(2ms, "exc"));
  auto d = weft::create_task(fail_after(30ms, "exc2"));
  auto [oa, ob, oc, od] = co_await weft::gather_settled(a, b, c, d);
  CO_ASSERT_TRUE(a.done() && b.done() && c.done() && d.done());
  CO_ASSERT_TRUE(oa.has_value() && ob.has_value());
  CO_ASSERT_EQ(oa.value(), 3);
  CO_ASSERT_EQ(ob.value(), 1);
  CO_ASSERT_TRUE(!oc.has_value() && !od.has_value());
  std::string m1, m2;
  try {
    std::rethrow_exception(oc.error());
  } catch (const std::runtime_error& e) {
    m1 = e.what();
  }
  try {
    (void)od.value();
  } catch (const std::runtime_error& e) {
    m2 = e.what();
  }
  CO_ASSERT_EQ(m1, std::string("exc"));
  CO_ASSERT_EQ(m2, std::string("exc2"));

  std::vector<weft::Coro<int>> coros;
  coros.push_back(value_after(3ms, 3));
  coros.push_back(fail_after(1ms, "x"));
  auto v = co_await weft::gather_settled(std::move(coros));
  CO_ASSERT_EQ(v.size(), 2u);
  CO_ASSERT_TRUE(v[0].has_value() && !v[1].has_value());
}

// ---------------------------------------------------------------------------------- GATH-05

WEFT_TEST_P(GatherW, Gath05ChildCancelledGivesCancelledErrorNotCancelledOuter) {
  auto victim = weft::create_task(forever());
  auto other = weft::create_task(value_after(20ms, 5));
  auto canceller = weft::create_task([](weft::Task<void> v) -> weft::Coro<void> {
    co_await weft::sleep(2ms);
    v.cancel("child gone");
  }(victim));
  std::string message;
  bool cancelled = false;
  try {
    (void)co_await weft::gather(victim, other);
  } catch (const weft::CancelledError& e) {
    cancelled = true;
    message = e.message();
  }
  CO_ASSERT_TRUE(cancelled);
  CO_ASSERT_EQ(message, std::string("child gone"));
  // The awaiting task itself was not cancelled and carries on.
  CO_ASSERT_EQ(weft::current_task().cancelling(), 0);
  co_await weft::sleep(0ms);
  // The remaining child keeps running.
  CO_ASSERT_EQ(co_await other, 5);
  co_await canceller;
}

// ---------------------------------------------------------------------------------- GATH-06

WEFT_TEST_P(GatherW, Gath06SettledPutsACancelledErrorAtEachCancelledPosition) {
  auto a = weft::create_task(value_after(1ms, 1));
  auto b = weft::create_task(forever());
  auto c = weft::create_task(value_after(2ms, 3));
  auto d = weft::create_task(forever());
  auto canceller =
      weft::create_task([](weft::Task<void> x, weft::Task<void> y) -> weft::Coro<void> {
        co_await weft::sleep(3ms);
        x.cancel("m1");
        y.cancel();
      }(b, d));
  auto [oa, ob, oc, od] = co_await weft::gather_settled(a, b, c, d);
  CO_ASSERT_EQ(oa.value(), 1);
  CO_ASSERT_EQ(oc.value(), 3);
  std::string mb = "unset", md = "unset";
  try {
    ob.value();
  } catch (const weft::CancelledError& e) {
    mb = e.message();
  }
  try {
    od.value();
  } catch (const weft::CancelledError& e) {
    md = e.message();
  }
  CO_ASSERT_EQ(mb, std::string("m1"));
  CO_ASSERT_EQ(md, std::string(""));
  co_await canceller;
}

// ---------------------------------------------------------------------------------- GATH-07

weft::Coro<void> gather_forever(bool settled, weft::Task<void> a, weft::Task<void> b,
                                std::string* message, std::atomic<bool>* started) {
  // Cancelled from here on, the cancellation reaches the gather (TASK-09).
  started->store(true);
  try {
    if (settled)
      (void)co_await weft::gather_settled(a, b);
    else
      (void)co_await weft::gather(a, b);
  } catch (const weft::CancelledError& e) {
    *message = e.message();
    throw;
  }
}

WEFT_TEST_P(GatherW, Gath07CancellingTheAwaiterCancelsEveryChildAndKeepsTheMessage) {
  for (bool settled : {false, true}) {
    auto a = weft::create_task(forever());
    auto b = weft::create_task(forever());
    std::string message;
    std::atomic<bool> started{false};
    auto awaiter = weft::create_task(gather_forever(settled, a, b, &message, &started));
    while (!started.load()) co_await weft::sleep(1ms);
    CO_ASSERT_TRUE(awaiter.cancel("my message"));
    bool cancelled = false;
    try {
      co_await awaiter;
    } catch (const weft::CancelledError& e) {
      cancelled = e.message() == "my message";
    }
    CO_ASSERT_TRUE(cancelled);
    CO_ASSERT_EQ(message, std::string("my message"));
    CO_ASSERT_TRUE(awaiter.cancelled());
    // The awaiter resumed only after the children reported back.
    if (settled) CO_ASSERT_TRUE(a.cancelled() && b.cancelled());
    CO_ASSERT_TRUE(a.cancelled() || b.cancelled());
    for (auto& t : {a, b}) {
      try {
        co_await t;
      } catch (const weft::CancelledError&) {
      }
    }
    CO_ASSERT_TRUE(a.cancelled() && b.cancelled());
  }
}

// ---------------------------------------------------------------------------------- GATH-08

weft::Coro<int> gather_one(weft::Task<int> c, bool* got_result) {
  auto [v] = co_await weft::gather(c);
  *got_result = true;
  co_return v;
}

weft::Coro<int> quick42() { co_return 42; }

WEFT_TEST(Gather, Gath08CancellingAfterEveryChildFinishedLeavesTheirResultsIntact) {
  bool got_result = false;
  // The awaiter starts first and waits on c; c then finishes in the same
  // iteration, and we cancel the awaiter before the gather's callback runs.
  auto c = weft::create_task(quick42());
  auto awaiter = weft::create_task(gather_one(c, &got_result));
  co_await weft::sleep(0ms);  // awaiter registered on c; c already finished
  CO_ASSERT_TRUE(c.done());
  CO_ASSERT_TRUE(!awaiter.done());
  CO_ASSERT_TRUE(awaiter.cancel());
  // The gather cannot be cancelled any more and its results are nobody
  // else's (asyncio's caller could still read them from the gather future):
  // weft hands them to the awaiter, and the cancellation waits for its next
  // await. gather_one returns right away, so it finishes with the value.
  bool cancelled = co_await weft::testing::raises_cancelled(awaiter);
  CO_ASSERT_TRUE(!cancelled);
  CO_ASSERT_TRUE(got_result);
  CO_ASSERT_EQ(awaiter.result(), 42);
  // The child was not cancelled and keeps its result.
  CO_ASSERT_TRUE(!c.cancelled());
  CO_ASSERT_EQ(c.result(), 42);
}

// ---------------------------------------------------------------------------------- GATH-09

WEFT_TEST_P(GatherW, Gath09EmptyGatherCompletesWithNothing) {
  std::tuple<> t = co_await weft::gather();
  (void)t;
  std::vector<int> v = co_await weft::gather(std::vector<weft::Task<int>>{});
  CO_ASSERT_TRUE(v.empty());
  auto s = co_await weft::gather_settled(std::vector<weft::Future<int>>{});
  CO_ASSERT_TRUE(s.empty());
}

// ---------------------------------------------------------------------------------- PROG-B /
// PROG-C

weft::Coro<std::string> task_a(Log* log) {
  log->add("A start");
  co_await weft::sleep(20ms);
  log->add("A end");
  co_return "A";
}

weft::Coro<std::string> task_b(Log* log) {
  log->add("B start");
  co_await weft::sleep(10ms);
  log->add("B end");
  co_return "B";
}

WEFT_TEST(Gather, ProgBGatherPrintsInCompletionOrderAndReturnsInArgumentOrder) {
  Log log;
  auto [a, b] = co_await weft::gather(task_a(&log), task_b(&log));
  log.add("[" + a + ", " + b + "]");
  CO_ASSERT_TRUE(
      (log.lines() == std::vector<std::string>{"A start", "B start", "B end", "A end", "[A, B]"}));
}

weft::Coro<void> worker(Log* log, int n) {
  for (int i = 0; i < 3; ++i) {
    log->add("Worker " + std::to_string(n) + ": step " + std::to_string(i));
    co_await weft::sleep(0ms);
  }
}

WEFT_TEST(Gather, ProgCGatheredWorkersRunRoundRobin) {
  Log log;
  co_await weft::gather(worker(&log, 1), worker(&log, 2), worker(&log, 3));
  std::vector<std::string> expected;
  for (int i = 0; i < 3; ++i)
    for (int n = 1; n <= 3; ++n)
      expected.push_back("Worker " + std::to_string(n) + ": step " + std::to_string(i));
  CO_ASSERT_TRUE(log.lines() == expected);
}

// Move-only results are moved out of children gather owns.
WEFT_TEST_P(GatherW, GatherMovesMoveOnlyResults) {
  auto make = [](int v) -> weft::Coro<std::unique_ptr<int>> {
    co_await weft::sleep(1ms);
    co_return std::make_unique<int>(v);
  };
  auto [p, q] = co_await weft::gather(make(1), make(2));
  CO_ASSERT_EQ(*p + *q, 3);
}

INSTANTIATE_TEST_SUITE_P(Workers, GatherW, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);

}  // namespace

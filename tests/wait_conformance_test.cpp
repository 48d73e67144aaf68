// Conformance tests for wait(), WAIT-01..05 of
// docs/asyncio-behaviours.md (issue 2).
//
// Tasks that must still be pending wait on a gate future, so no assertion
// depends on timing; every behaviour runs at 1, 2 and 8 workers.
//
// Python-only items with no runtime test (ruled out at compile time): WAIT-05's
// invalid return_when (an enum), a single future or coroutine instead of an
// iterable, and coroutines as elements (wait takes std::vector<Task<T>>);
// "iterators and generators are accepted" (a std::vector is the C++ input).
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

class WaitW : public weft::testing::WorkersTest {};

weft::Coro<int> value_after(std::chrono::milliseconds d, int v) {
  co_await weft::sleep(d);
  co_return v;
}

weft::Coro<int> fail_after(std::chrono::milliseconds d) {
  co_await weft::sleep(d);
  throw std::runtime_error("failed");
}

bool same(const std::vector<weft::Task<int>>& got, const std::vector<weft::Task<int>>& want) {
  return got == want;
}

// ---------------------------------------------------------------------------------- WAIT-01

WEFT_TEST_P(WaitW, Wait01AllCompletedWaitsForEveryTaskFailuresCountAsDone) {
  auto a = weft::create_task(value_after(5ms, 1));
  auto b = weft::create_task(fail_after(1ms));
  auto r = co_await weft::wait(weft::testing::tasks_of(a, b));
  CO_ASSERT_TRUE(same(r.done, {a, b}));
  CO_ASSERT_TRUE(r.pending.empty());
  CO_ASSERT_TRUE(b.exception() != nullptr);  // wait itself does not raise
}

// ---------------------------------------------------------------------------------- WAIT-02

WEFT_TEST_P(WaitW, Wait02FirstCompletedReturnsAsSoonAsOneFinishes) {
  weft::Future<void> gate;
  auto a = weft::create_task(weft::testing::gated(gate, 1));
  auto b = weft::create_task(value_after(1ms, 2));
  auto r = co_await weft::wait(weft::testing::tasks_of(a, b),
                               {.return_when = weft::ReturnWhen::FIRST_COMPLETED});
  CO_ASSERT_TRUE(same(r.done, {b}));
  CO_ASSERT_TRUE(same(r.pending, {a}));
  gate.set_result();
  CO_ASSERT_EQ(co_await a, 1);
}

WEFT_TEST_P(WaitW, Wait02SeveralDoneInTheSameIterationAreAllReported) {
  weft::Future<void> gate;
  auto a = weft::create_task(weft::testing::gated(gate, 1));
  auto b = weft::create_task(value_after(0ms, 2));
  auto c = weft::create_task(value_after(0ms, 3));
  co_await b;
  co_await c;
  auto r = co_await weft::wait(weft::testing::tasks_of(a, b, c),
                               {.return_when = weft::ReturnWhen::FIRST_COMPLETED});
  CO_ASSERT_TRUE(same(r.done, {b, c}));
  CO_ASSERT_TRUE(same(r.pending, {a}));
  gate.set_result();
  co_await a;
}

// ---------------------------------------------------------------------------------- WAIT-03

WEFT_TEST_P(WaitW, Wait03FirstExceptionReturnsWhenOneRaises) {
  weft::Future<void> gate;
  auto a = weft::create_task(weft::testing::gated(gate, 1));
  auto b = weft::create_task(fail_after(1ms));
  auto ok = weft::create_task(value_after(0ms, 3));
  co_await ok;
  auto r = co_await weft::wait(weft::testing::tasks_of(a, ok, b),
                               {.return_when = weft::ReturnWhen::FIRST_EXCEPTION});
  CO_ASSERT_TRUE(same(r.done, {ok, b}));
  CO_ASSERT_TRUE(same(r.pending, {a}));

  // One had already failed: returns at once.
  auto r2 = co_await weft::wait(weft::testing::tasks_of(a, b),
                                {.return_when = weft::ReturnWhen::FIRST_EXCEPTION});
  CO_ASSERT_TRUE(same(r2.done, {b}));
  CO_ASSERT_TRUE(same(r2.pending, {a}));
  gate.set_result();
  co_await a;

  // Nothing raises: behaves like ALL_COMPLETED.
  auto x = weft::create_task(value_after(2ms, 1));
  auto y = weft::create_task(value_after(1ms, 2));
  auto r3 = co_await weft::wait(weft::testing::tasks_of(x, y),
                                {.return_when = weft::ReturnWhen::FIRST_EXCEPTION});
  CO_ASSERT_TRUE(same(r3.done, {x, y}));
  CO_ASSERT_TRUE(r3.pending.empty());
}

// ---------------------------------------------------------------------------------- WAIT-04

WEFT_TEST_P(WaitW, Wait04TimeoutReturnsWithoutCancellingOrRaising) {
  weft::Future<void> gate;
  auto a = weft::create_task(weft::testing::gated(gate, 1));
  auto b = weft::create_task(value_after(0ms, 2));
  co_await b;
  auto r = co_await weft::wait(weft::testing::tasks_of(a, b), {.timeout = 2ms});
  CO_ASSERT_TRUE(same(r.done, {b}));
  CO_ASSERT_TRUE(same(r.pending, {a}));
  CO_ASSERT_TRUE(!a.done() && !a.cancelled());
  gate.set_result();
  CO_ASSERT_EQ(co_await a, 1);
}

// ---------------------------------------------------------------------------------- WAIT-05

weft::Coro<void> wait_on(std::vector<weft::Task<int>> ts, std::atomic<bool>* started) {
  started->store(true);
  (void)co_await weft::wait(std::move(ts));
}

WEFT_TEST_P(WaitW, Wait05EmptyInputIsAValueErrorAndDuplicatesAreMerged) {
  bool value_error = false;
  try {
    (void)co_await weft::wait(std::vector<weft::Task<int>>());
  } catch (const weft::ValueError&) {
    value_error = true;
  }
  CO_ASSERT_TRUE(value_error);

  auto a = weft::create_task(value_after(0ms, 1));
  auto r = co_await weft::wait(weft::testing::tasks_of(a, a, a));
  CO_ASSERT_TRUE(same(r.done, {a}));
}

WEFT_TEST_P(WaitW, Wait05CancellingTheWaiterDoesNotCancelTheTasks) {
  weft::Future<void> gate;
  auto a = weft::create_task(weft::testing::gated(gate, 1));
  std::atomic<bool> started{false};
  auto waiter = weft::create_task(wait_on({a}, &started));
  while (!started.load()) co_await weft::sleep(1ms);
  waiter.cancel();
  bool cancelled = false;
  try {
    co_await waiter;
  } catch (const weft::CancelledError&) {
    cancelled = true;
  }
  CO_ASSERT_TRUE(cancelled);
  CO_ASSERT_TRUE(!a.done() && !a.cancelled());
  gate.set_result();
  CO_ASSERT_EQ(co_await a, 1);
}

INSTANTIATE_TEST_SUITE_P(Workers, WaitW, weft::testing::kWorkerCounts, weft::testing::worker_name);

}  // namespace

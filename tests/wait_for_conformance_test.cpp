// Conformance tests for wait_for() and timeout_at(when, aw), WFOR-01..08 of
// docs/asyncio-behaviours.md (issue 2).
//
// WFOR-07's "inner finished in the same cycle" case is about iteration order
// and runs at workers = 1; everything else also runs at 2 and 8 workers.
// Timeouts that must fire are short; awaitables that must not finish in time
// wait on a gate future or sleep for an hour, so no assertion depends on
// timing under load.
#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

class WaitForW : public weft::testing::WorkersTest {};

weft::Coro<int> value_after(std::chrono::milliseconds d, int v) {
  co_await weft::sleep(d);
  co_return v;
}

/// Waits (without timing assumptions) until a task set `flag`.
weft::Coro<void> until(const std::atomic<bool>& flag) {
  while (!flag.load()) co_await weft::sleep(1ms);
}

/// Sleeps an hour; when cancelled, awaits once more (cleanup) before re-raising.
weft::Coro<int> slow_with_cleanup(bool* cleaned_up, std::atomic<bool>* started = nullptr) {
  if (started) started->store(true);
  bool cancelled = false;
  try {
    co_await weft::sleep(1h);
  } catch (const weft::CancelledError&) {
    cancelled = true;
  }
  if (cancelled) {
    co_await weft::sleep(1ms);
    *cleaned_up = true;
    throw weft::CancelledError();
  }
  co_return 0;
}

// ---------------------------------------------------------------------------------- WFOR-01

WEFT_TEST_P(WaitForW, Wfor01ReturnsTheResultInTimeAndNulloptNeverTimesOut) {
  CO_ASSERT_EQ(co_await weft::wait_for(value_after(1ms, 7), 1h), 7);
  auto t = weft::create_task(value_after(5ms, 8));
  CO_ASSERT_EQ(co_await weft::wait_for(t, std::nullopt), 8);
  weft::Future<std::string> f;
  f.set_result("x");
  CO_ASSERT_EQ(co_await weft::wait_for(f, 1h), std::string("x"));
  co_await weft::wait_for(weft::sleep(1ms), 1h);  // void
  // Any chrono duration, fractional seconds included.
  CO_ASSERT_EQ(co_await weft::wait_for(value_after(1ms, 3), std::chrono::duration<double>(60.5)),
               3);
  // The deadline form.
  CO_ASSERT_EQ(co_await weft::timeout_at(weft::get_running_loop().time() + 1h, value_after(1ms, 9)),
               9);
}

// ---------------------------------------------------------------------------------- WFOR-02

WEFT_TEST_P(WaitForW, Wfor02TimeoutCancelsTheInnerAndWaitsForItsCleanupFirst) {
  bool cleaned_up = false;
  std::atomic<bool> started{false};
  auto inner = weft::create_task(slow_with_cleanup(&cleaned_up, &started));
  co_await until(started);
  bool timed_out = false, nested = false;
  try {
    (void)co_await weft::wait_for(inner, 2ms);
  } catch (const weft::TimeoutError& e) {
    timed_out = true;
    nested = weft::testing::nests_cancelled_error(e);
  }
  CO_ASSERT_TRUE(timed_out);
  CO_ASSERT_TRUE(nested);
  CO_ASSERT_TRUE(cleaned_up);  // the inner's cleanup ran before TimeoutError
  CO_ASSERT_TRUE(inner.cancelled());
  CO_ASSERT_EQ(weft::current_task().cancelling(), 0);

  // A Coro argument is wrapped in a task and handled the same way (whether
  // its cleanup ran depends on whether it started within 2 ms: not asserted).
  bool cleaned_up2 = false;
  bool timed_out2 = false;
  try {
    (void)co_await weft::wait_for(slow_with_cleanup(&cleaned_up2), 2ms);
  } catch (const weft::TimeoutError&) {
    timed_out2 = true;
  }
  CO_ASSERT_TRUE(timed_out2);
}

// ---------------------------------------------------------------------------------- WFOR-03

WEFT_TEST_P(WaitForW, Wfor03NonPositiveTimeoutWithADoneFutureReturnsItsResult) {
  weft::Future<int> f;
  f.set_result(5);
  CO_ASSERT_EQ(co_await weft::wait_for(f, 0ms), 5);
  CO_ASSERT_EQ(co_await weft::wait_for(f, -1s), 5);
  auto t = weft::create_task(value_after(0ms, 6));
  co_await t;
  CO_ASSERT_EQ(co_await weft::wait_for(t, 0ms), 6);
}

// ---------------------------------------------------------------------------------- WFOR-04

weft::Coro<int> never_started(bool* started) {
  *started = true;
  co_return 1;
}

WEFT_TEST_P(WaitForW, Wfor04NonPositiveTimeoutCancelsFirstACoroutineNeverStarts) {
  bool started = false;
  bool timed_out = false;
  try {
    (void)co_await weft::wait_for(never_started(&started), 0ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  CO_ASSERT_TRUE(timed_out);
  CO_ASSERT_TRUE(!started);

  // A running task is cancelled, its cleanup awaited, then TimeoutError.
  bool cleaned_up = false;
  std::atomic<bool> t_started{false};
  auto t = weft::create_task(slow_with_cleanup(&cleaned_up, &t_started));
  co_await until(t_started);
  bool timed_out2 = false;
  try {
    (void)co_await weft::wait_for(t, 0ms);
  } catch (const weft::TimeoutError&) {
    timed_out2 = true;
  }
  CO_ASSERT_TRUE(timed_out2 && cleaned_up && t.cancelled());
}

// ---------------------------------------------------------------------------------- WFOR-05

weft::Coro<int> suppresses_cancel(std::atomic<bool>* started) {
  started->store(true);
  try {
    co_await weft::sleep(1h);
  } catch (const weft::CancelledError&) {
  }
  co_return 42;
}

WEFT_TEST_P(WaitForW, Wfor05InnerSuppressingTheCancellationGivesItsValue) {
  std::atomic<bool> started{false};
  auto t = weft::create_task(suppresses_cancel(&started));
  co_await until(started);
  CO_ASSERT_EQ(co_await weft::wait_for(t, 2ms), 42);
  CO_ASSERT_EQ(weft::current_task().cancelling(), 0);
  co_await weft::sleep(1ms);  // not cancelled afterwards
}

// ---------------------------------------------------------------------------------- WFOR-06

weft::Coro<int> raises_on_cancel(std::atomic<bool>* started) {
  started->store(true);
  try {
    co_await weft::sleep(1h);
  } catch (const weft::CancelledError&) {
    throw std::invalid_argument("during cancellation");
  }
  co_return 0;
}

WEFT_TEST_P(WaitForW, Wfor06OtherExceptionDuringCancellationPropagates) {
  std::atomic<bool> started{false};
  auto t = weft::create_task(raises_on_cancel(&started));
  co_await until(started);
  std::string what;
  try {
    (void)co_await weft::wait_for(t, 2ms);
  } catch (const std::invalid_argument& e) {
    what = e.what();
  }
  CO_ASSERT_EQ(what, std::string("during cancellation"));
}

// ---------------------------------------------------------------------------------- WFOR-07

weft::Coro<int> wait_inner(weft::Task<int> inner, std::optional<weft::Duration> d,
                           std::atomic<bool>* started = nullptr) {
  if (started) started->store(true);
  co_return co_await weft::wait_for(inner, d);
}

WEFT_TEST_P(WaitForW, Wfor07CancellingTheWaiterCancelsTheInner) {
  for (std::optional<weft::Duration> d :
       {std::optional<weft::Duration>(1h), std::optional<weft::Duration>()}) {
    bool cleaned_up = false;
    std::atomic<bool> inner_started{false}, waiter_started{false};
    auto inner = weft::create_task(slow_with_cleanup(&cleaned_up, &inner_started));
    auto waiter = weft::create_task(wait_inner(inner, d, &waiter_started));
    co_await until(inner_started);
    co_await until(waiter_started);
    // Cancelled before or after it suspends in wait_for: either way the
    // cancellation reaches the inner task (TASK-09).
    waiter.cancel();
    bool cancelled = co_await weft::testing::raises_cancelled(waiter);
    CO_ASSERT_TRUE(cancelled && waiter.cancelled());
    CO_ASSERT_TRUE(inner.cancelled() && cleaned_up);
  }
}

WEFT_TEST(WaitFor, Wfor07OuterCancellationIsNeverSwallowedEvenIfTheInnerJustFinished) {
  weft::Future<void> gate;
  auto inner = weft::create_task(weft::testing::gated(gate, 1));
  auto waiter = weft::create_task(wait_inner(inner, 1h));
  co_await weft::sleep(0ms);  // inner waits on the gate, waiter on inner
  gate.set_result();
  co_await weft::sleep(0ms);  // inner finished this iteration; waiter is queued behind us
  CO_ASSERT_TRUE(inner.done());
  CO_ASSERT_TRUE(!waiter.done());
  waiter.cancel();
  bool cancelled = co_await weft::testing::raises_cancelled(waiter);
  CO_ASSERT_TRUE(cancelled && waiter.cancelled());
  CO_ASSERT_EQ(inner.result(), 1);
}

// ---------------------------------------------------------------------------------- WFOR-08

weft::Coro<std::string> finishes_later(weft::Future<void> gate) {
  co_await gate;
  co_return "done";
}

WEFT_TEST_P(WaitForW, Wfor08ShieldedInnerIsNotCancelledByTheTimeout) {
  for (weft::Duration d : {weft::Duration(2ms), weft::Duration(0)}) {
    weft::Future<void> gate;
    auto t = weft::create_task(finishes_later(gate));
    bool timed_out = false;
    try {
      (void)co_await weft::wait_for(weft::shield(t), d);
    } catch (const weft::TimeoutError&) {
      timed_out = true;
    }
    CO_ASSERT_TRUE(timed_out);
    CO_ASSERT_TRUE(!t.done() && !t.cancelled());
    gate.set_result();
    CO_ASSERT_EQ(co_await t, std::string("done"));
  }
  // With no timeout, the shield just passes the result through.
  weft::Future<void> gate;
  gate.set_result();
  auto t = weft::create_task(finishes_later(gate));
  CO_ASSERT_EQ(co_await weft::wait_for(weft::shield(t), std::nullopt), std::string("done"));
}

INSTANTIATE_TEST_SUITE_P(Workers, WaitForW, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);

}  // namespace

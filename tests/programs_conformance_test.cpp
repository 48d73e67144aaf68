// Exact-output programs PROG-A, PROG-C and PROG-D of
// docs/asyncio-behaviours.md (issue 2), at workers = 1. Output lines
// go into a vector, not stdout. PROG-B uses gather and is covered by the
// composition tests. PROG-C is written without gather (not part of the core):
// the three workers are created as tasks in argument order and awaited in
// turn, which is what gather does with coroutine arguments (GATH-02). The
// sleeps of PROG-A and PROG-D are scaled from seconds to milliseconds; line
// order is the contract, not the timing.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;
using Lines = std::vector<std::string>;

namespace {

constexpr auto kSecond = 20ms;  // one "second" of the original programs

weft::Coro<void> task1(Lines* out) {
  for (int i = 0; i < 2; ++i) {
    out->push_back("Task 1");
    co_await weft::sleep(kSecond);
  }
}
weft::Coro<void> task2(Lines* out) {
  for (int i = 0; i < 3; ++i) {
    out->push_back("Task 2");
    co_await weft::sleep(0ms);
  }
}

WEFT_TEST(Programs, ProgAInterleavedSleeps) {
  Lines out;
  auto one = weft::create_task(task1(&out));
  auto two = weft::create_task(task2(&out));
  co_await one;
  co_await two;
  out.push_back("done");
  EXPECT_EQ(out, (Lines{"Task 1", "Task 2", "Task 2", "Task 2", "Task 1", "done"}));
}

weft::Coro<void> worker(int n, Lines* out, bool sleep_after_last) {
  for (int i = 0; i < 3; ++i) {
    out->push_back("Worker " + std::to_string(n) + ": step " + std::to_string(i));
    if (i < 2 || sleep_after_last) co_await weft::sleep(0ms);
  }
}

weft::Coro<void> prog_c(bool sleep_after_last) {
  Lines out;
  std::vector<weft::Task<void>> tasks;
  for (int n = 1; n <= 3; ++n)
    tasks.push_back(weft::create_task(worker(n, &out, sleep_after_last)));
  for (auto& t : tasks) co_await t;
  Lines expected;
  for (int i = 0; i < 3; ++i)
    for (int n = 1; n <= 3; ++n)
      expected.push_back("Worker " + std::to_string(n) + ": step " + std::to_string(i));
  EXPECT_EQ(out, expected);
}

WEFT_TEST(Programs, ProgCStrictRoundRobin) { co_await prog_c(true); }
WEFT_TEST(Programs, ProgCStrictRoundRobinWithSleepOnlyBetweenSteps) { co_await prog_c(false); }

WEFT_TEST(Programs, ProgDCallSoonThenCallLater) {
  auto out = std::make_shared<Lines>();
  weft::EventLoop& loop = weft::get_running_loop();
  loop.call_soon([out] { out->push_back("Callback executed immediately"); });
  loop.call_later(2 * kSecond, [out] { out->push_back("Callback executed after 2 seconds"); });
  co_await weft::sleep(3 * kSecond);
  EXPECT_EQ(*out, (Lines{"Callback executed immediately", "Callback executed after 2 seconds"}));
}

WEFT_TEST(Programs, ProgDCallSoonStillFirstAfterACallLaterZero) {
  auto out = std::make_shared<Lines>();
  weft::EventLoop& loop = weft::get_running_loop();
  loop.call_later(0ms, [out] { out->push_back("later(0)"); });
  loop.call_soon([out] { out->push_back("soon"); });
  co_await weft::sleep(kSecond);
  EXPECT_EQ(*out, (Lines{"soon", "later(0)"}));
}

}  // namespace

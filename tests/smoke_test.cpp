// Smoke tests of the executor core (issue 2).
#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {
weft::Coro<int> add(int a, int b) { co_return a + b; }
}  // namespace

WEFT_TEST(Smoke, CoroutineReturnsValueInline) {
  int v = co_await add(40, 2);
  EXPECT_EQ(v, 42);
}

class SmokeW : public weft::testing::WorkersTest {};
WEFT_TEST_P(SmokeW, TasksRunAndSleepAtEveryWorkerCount) {
  std::vector<weft::Task<int>> tasks;
  for (int i = 0; i < 100; ++i)
    tasks.push_back(weft::create_task([](int i) -> weft::Coro<int> {
      co_await weft::sleep(1ms);
      co_return i;
    }(i)));
  int sum = 0;
  for (auto& t : tasks) sum += co_await t;
  EXPECT_EQ(sum, 4950);
}
INSTANTIATE_TEST_SUITE_P(Workers, SmokeW, weft::testing::kWorkerCounts, weft::testing::worker_name);

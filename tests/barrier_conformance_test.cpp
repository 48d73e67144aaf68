// Barrier conformance: the BAR behaviours of docs/asyncio-behaviours.md
// (issue 4). WEFT_TEST bodies run at one worker (exact asyncio order); BarW
// tests run at 1, 2 and 8 workers and check everything but order.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "sync_test_util.hpp"

using namespace std::chrono_literals;
using weft::testing::ended_cancelled;
using weft::testing::eventually;
using weft::testing::ticks;

namespace {

weft::Coro<std::size_t> pass(weft::Barrier* b) { co_return co_await b->wait(); }

weft::Coro<void> pass_and_record(weft::Barrier* b, std::vector<std::pair<int, std::size_t>>* out,
                                 int id) {
  std::size_t index = co_await b->wait();
  out->emplace_back(id, index);
}

/// Waits once; counts a BrokenBarrierError.
weft::Coro<void> pass_or_broken(weft::Barrier* b, std::atomic<int>* broken) {
  try {
    co_await b->wait();
  } catch (const weft::BrokenBarrierError&) {
    broken->fetch_add(1);
  }
}

}  // namespace

class BarW : public weft::testing::WorkersTest {};

WEFT_TEST_P(BarW, Bar01PartiesMustBePositive) {
  for (std::int64_t bad : {0, -1}) {
    try {
      weft::Barrier b(bad);
      ADD_FAILURE() << "Barrier(" << bad << ") did not throw";
    } catch (const weft::ValueError& e) {
      EXPECT_STREQ(e.what(), "parties must be > 0");
    }
  }
  weft::Barrier ok(3);
  CO_ASSERT_EQ(ok.parties(), 3u);
  CO_ASSERT_EQ(ok.n_waiting(), 0u);
  CO_ASSERT_TRUE(!ok.broken());
  co_return;
}

WEFT_TEST(Barrier, Bar02FillsTaskByTaskWithArrivalIndices) {
  weft::Barrier b(3);
  std::vector<std::pair<int, std::size_t>> result;
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 3; ++i) {
    tasks.push_back(weft::create_task(pass_and_record(&b, &result, i)));
    co_await ticks();
    if (i < 2) CO_ASSERT_EQ(b.n_waiting(), static_cast<std::size_t>(i + 1));
  }
  for (auto& t : tasks) co_await t;
  CO_ASSERT_EQ(b.n_waiting(), 0u);
  CO_ASSERT_TRUE(!b.broken());
  std::sort(result.begin(), result.end());
  for (int i = 0; i < 3; ++i) CO_ASSERT_EQ(result[i].second, static_cast<std::size_t>(i));
}

WEFT_TEST_P(BarW, Bar02DistinctIndicesAndOnePartyNeverBlocks) {
  weft::Barrier b(5);
  std::vector<weft::Task<std::size_t>> tasks;
  for (int i = 0; i < 5; ++i) tasks.push_back(weft::create_task(pass(&b)));
  std::set<std::size_t> seen;
  for (auto& t : tasks) seen.insert(co_await t);
  CO_ASSERT_EQ(seen.size(), 5u);
  CO_ASSERT_EQ(*seen.rbegin(), 4u);
  CO_ASSERT_EQ(b.n_waiting(), 0u);
  CO_ASSERT_TRUE(!b.broken());
  weft::Barrier one(1);
  CO_ASSERT_EQ(co_await one.wait(), 0u);
  CO_ASSERT_EQ(co_await one.wait(), 0u);
}

WEFT_TEST(Barrier, Bar03LastArriverResumesFirst) {
  weft::Barrier b(3);
  std::vector<std::pair<int, std::size_t>> result;
  auto t0 = weft::create_task(pass_and_record(&b, &result, 0));
  auto t1 = weft::create_task(pass_and_record(&b, &result, 1));
  auto t2 = weft::create_task(pass_and_record(&b, &result, 2));
  co_await t0;
  co_await t1;
  co_await t2;
  CO_ASSERT_TRUE(result == (std::vector<std::pair<int, std::size_t>>{{2, 2}, {0, 0}, {1, 1}}));
}

WEFT_TEST_P(BarW, Bar04CyclicPassedAgainAndAgain) {
  weft::Barrier b(4);
  std::atomic<int> phase_errors{0};
  std::atomic<int> arrivals{0};
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 4; ++i)
    tasks.push_back(weft::create_task(
        [](weft::Barrier* bar, std::atomic<int>* arr, std::atomic<int>* err) -> weft::Coro<void> {
          for (int round = 0; round < 20; ++round) {
            arr->fetch_add(1);
            co_await bar->wait();
            // Nobody passes round r before all four arrived in round r.
            if (arr->load() < 4 * (round + 1)) err->fetch_add(1);
          }
        }(&b, &arrivals, &phase_errors)));
  for (auto& t : tasks) co_await t;
  CO_ASSERT_EQ(phase_errors.load(), 0);
  CO_ASSERT_EQ(arrivals.load(), 80);
  CO_ASSERT_EQ(b.n_waiting(), 0u);
}

WEFT_TEST(Barrier, Bar04NewArrivalsBlockWhileDraining) {
  weft::Barrier b(2);
  std::vector<std::pair<int, std::size_t>> result;
  auto t0 = weft::create_task(pass_and_record(&b, &result, 0));
  auto t1 = weft::create_task(pass_and_record(&b, &result, 1));
  // t2 and t3 are created while the first cycle drains: they form the next one.
  auto t2 = weft::create_task(pass_and_record(&b, &result, 2));
  auto t3 = weft::create_task(pass_and_record(&b, &result, 3));
  co_await t0;
  co_await t1;
  co_await t2;
  co_await t3;
  CO_ASSERT_EQ(result.size(), 4u);
  std::set<std::size_t> first, second;
  for (auto& [id, idx] : result) (id < 2 ? first : second).insert(idx);
  CO_ASSERT_TRUE(first == (std::set<std::size_t>{0, 1}));
  CO_ASSERT_TRUE(second == (std::set<std::size_t>{0, 1}));
}

WEFT_TEST_P(BarW, Bar05CancelledWaiterLeavesWithoutBreaking) {
  weft::Barrier b(2);
  auto t = weft::create_task(pass(&b));
  CO_ASSERT_TRUE(co_await eventually([&] { return b.n_waiting() == 1; }));
  t.cancel();
  CO_ASSERT_TRUE(co_await ended_cancelled(t));
  CO_ASSERT_EQ(b.n_waiting(), 0u);
  CO_ASSERT_TRUE(!b.broken());
  auto a = weft::create_task(pass(&b));
  auto c = weft::create_task(pass(&b));
  std::size_t ia = co_await a;
  std::size_t ic = co_await c;
  CO_ASSERT_EQ(ia + ic, 1u);
}

WEFT_TEST_P(BarW, Bar06ResetBreaksCurrentWaitersAndLeavesItUsable) {
  weft::Barrier b(3);
  std::atomic<int> broken{0};
  auto t1 = weft::create_task(pass_or_broken(&b, &broken));
  auto t2 = weft::create_task(pass_or_broken(&b, &broken));
  CO_ASSERT_TRUE(co_await eventually([&] { return b.n_waiting() == 2; }));
  co_await b.reset();
  co_await t1;
  co_await t2;
  CO_ASSERT_EQ(broken.load(), 2);
  CO_ASSERT_TRUE(!b.broken());
  CO_ASSERT_EQ(b.n_waiting(), 0u);
  std::vector<weft::Task<std::size_t>> again;
  for (int i = 0; i < 3; ++i) again.push_back(weft::create_task(pass(&b)));
  std::size_t sum = 0;
  for (auto& t : again) sum += co_await t;
  CO_ASSERT_EQ(sum, 3u);
  co_await b.reset();  // on an empty barrier: stays filling
  CO_ASSERT_TRUE(!b.broken());
}

WEFT_TEST_P(BarW, Bar07AbortBreaksUntilReset) {
  weft::Barrier b(3);
  std::atomic<int> broken{0};
  auto t1 = weft::create_task(pass_or_broken(&b, &broken));
  CO_ASSERT_TRUE(co_await eventually([&] { return b.n_waiting() == 1; }));
  co_await b.abort();
  co_await t1;
  CO_ASSERT_EQ(broken.load(), 1);
  CO_ASSERT_TRUE(b.broken());
  bool threw = false;
  try {
    co_await b.wait();
  } catch (const weft::BrokenBarrierError&) {
    threw = true;
  }
  CO_ASSERT_TRUE(threw);
  co_await b.reset();
  CO_ASSERT_TRUE(!b.broken());
  std::vector<weft::Task<std::size_t>> again;
  for (int i = 0; i < 3; ++i) again.push_back(weft::create_task(pass(&b)));
  for (auto& t : again) co_await t;
}

INSTANTIATE_TEST_SUITE_P(Workers, BarW, weft::testing::kWorkerCounts, weft::testing::worker_name);

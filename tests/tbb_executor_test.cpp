// TbbExecutor: CPU-bound offload into a oneTBB task_arena (issue 5).
#include <gtest/gtest.h>
#include <weft/errors.hpp>
#include <weft/tbb_executor.hpp>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using weft::TbbExecutor;

/// Iteration counts shrink under sanitizers (never raise timeouts instead).
constexpr long scaled(long n) {
#ifdef WEFT_SANITIZED
  return std::max<long>(1, n / 20);
#else
  return n;
#endif
}

/// Raises `peak` to `now` if higher.
void record_peak(std::atomic<int>& peak, int now) {
  int seen = peak.load();
  while (now > seen && !peak.compare_exchange_weak(seen, now)) {
  }
}

TEST(TbbExecutor, RunsParallelReduceInsideArena) {
  TbbExecutor cpu(2);
  const long n = scaled(1'000'000);
  std::mutex mutex;
  std::set<std::thread::id> body_threads;  // guarded by mutex
  long sum = 0;
  int arena_concurrency = 0;
  cpu.submit([&] {
    arena_concurrency = tbb::this_task_arena::max_concurrency();
    sum = tbb::parallel_reduce(
        tbb::blocked_range<long>(1, n + 1), 0L,
        [&](const tbb::blocked_range<long>& r, long acc) {
          {
            std::lock_guard lock(mutex);
            body_threads.insert(std::this_thread::get_id());
          }
          for (long i = r.begin(); i != r.end(); ++i) acc += i;
          return acc;
        },
        std::plus<>());
  });
  cpu.shutdown(true);
  EXPECT_EQ(sum, n * (n + 1) / 2);
  EXPECT_EQ(arena_concurrency, 2);
  EXPECT_LE(body_threads.size(), 2u);
  EXPECT_EQ(body_threads.count(std::this_thread::get_id()), 0u) << "ran on the submitter";
}

TEST(TbbExecutor, ConcurrencyIsBounded) {
  TbbExecutor cpu(2);
  EXPECT_EQ(cpu.max_concurrency(), 2);
  const int jobs = 16;
  std::atomic<int> running{0}, peak{0}, ran{0};
  for (int i = 0; i < jobs; ++i) {
    cpu.submit([&] {
      record_peak(peak, ++running);
      std::this_thread::sleep_for(2ms);
      --running;
      ++ran;
    });
  }
  cpu.shutdown(true);
  EXPECT_EQ(ran, jobs);
  EXPECT_GE(peak, 1);
  EXPECT_LE(peak, 2);
}

TEST(TbbExecutor, EverySlotRunsAFunctionEvenWithFewCores) {
  // Two functions that each wait for the other finish only if the arena
  // really runs two at once (TBB's default worker limit, cores - 1, would
  // leave a two-slot arena with one thread on a two-core machine).
  TbbExecutor cpu(2);
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;  // guarded by mutex
  std::atomic<int> met{0};
  for (int i = 0; i < 2; ++i) {
    cpu.submit([&] {
      std::unique_lock lock(mutex);
      ++arrived;
      cv.notify_all();
      if (cv.wait_for(lock, 10s, [&] { return arrived == 2; })) ++met;
    });
  }
  cpu.shutdown(true);
  EXPECT_EQ(met, 2);
}

TEST(TbbExecutor, DefaultConcurrencyIsTheHardwareConcurrency) {
  TbbExecutor cpu;
  EXPECT_EQ(cpu.max_concurrency(), tbb::this_task_arena::max_concurrency());
  EXPECT_THROW(TbbExecutor(-1), weft::ValueError);
}

TEST(TbbExecutor, SubmitAfterShutdownThrows) {
  for (const bool wait : {true, false}) {
    TbbExecutor cpu(1);
    cpu.submit([] {});
    cpu.shutdown(wait);
    try {
      cpu.submit([] {});
      ADD_FAILURE() << "submit after shutdown did not throw";
    } catch (const weft::RuntimeError& e) {
      EXPECT_STREQ(e.what(), "TbbExecutor::submit: executor is shut down");
    }
    cpu.shutdown(wait);  // idempotent
  }
}

TEST(TbbExecutor, RejectsAnEmptyFunction) {
  TbbExecutor cpu(1);
  EXPECT_THROW(cpu.submit({}), weft::ValueError);
}

TEST(TbbExecutor, ShutdownWaitsForSubmittedWork) {
  const long jobs = scaled(2000);
  TbbExecutor cpu(2);
  std::atomic<long> ran{0};
  auto token = std::make_shared<int>(0);
  for (long i = 0; i < jobs; ++i) cpu.submit([&ran, token] { ++ran; });
  token.reset();
  cpu.shutdown(true);
  EXPECT_EQ(ran, jobs);
  EXPECT_EQ(cpu.pending(), 0u);
}

TEST(TbbExecutor, CapturesAreDestroyedBeforeShutdownReturns) {
  TbbExecutor cpu(2);
  auto token = std::make_shared<int>(0);
  for (int i = 0; i < 10; ++i) cpu.submit([token] {});
  cpu.shutdown(true);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(TbbExecutor, ThrowingFunctionDoesNotCancelTheOthers) {
  TbbExecutor cpu(1);
  std::atomic<int> ran{0};
  ::testing::internal::CaptureStderr();
  cpu.submit([] { throw std::runtime_error("boom in the arena"); });
  for (int i = 0; i < 10; ++i) cpu.submit([&] { ++ran; });
  cpu.shutdown(true);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(ran, 10);
  EXPECT_NE(err.find("boom in the arena"), std::string::npos) << err;
}

TEST(TbbExecutor, ShutdownWaitInsideOwnFunctionThrows) {
  TbbExecutor cpu(1);
  std::atomic<bool> threw{false};
  cpu.submit([&] {
    try {
      cpu.shutdown(true);
    } catch (const weft::RuntimeError&) {
      threw = true;
    }
  });
  cpu.shutdown(true);
  EXPECT_TRUE(threw);
}

TEST(TbbExecutor, ConcurrentSubmittersCountExactly) {
  const long per_submitter = scaled(20000);
  constexpr int kSubmitters = 4;
  TbbExecutor cpu(2);
  std::atomic<long> ran{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) {
    submitters.emplace_back([&] {
      for (long i = 0; i < per_submitter; ++i) cpu.submit([&] { ran.fetch_add(1); });
    });
  }
  for (auto& t : submitters) t.join();
  cpu.shutdown(true);
  EXPECT_EQ(ran, kSubmitters * per_submitter);
}

}  // namespace

#if defined(__SANITIZE_THREAD__)
// Replaces the library's weak default (see the end of tbb_executor.cpp) with
// it plus the one TBB algorithm these tests call: libtbb is not instrumented,
// so parallel_reduce's internal hand-offs between its threads are invisible to
// ThreadSanitizer.
extern "C" const char* __tsan_default_suppressions() {
  return "race:moodycamel::ConcurrentQueue\n"
         "race_top:/oneapi/tbb/\n"
         "race:/oneapi/tbb/parallel_reduce.h\n";
}
#endif

// ThreadPoolExecutor: the elastic blocking pool behind run_in_executor and
// to_thread (issue 5).
#include <gtest/gtest.h>
#include <weft/errors.hpp>
#include <weft/thread_pool_executor.hpp>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::ThreadPoolExecutor;

/// Iteration counts shrink under sanitizers (never raise timeouts instead).
constexpr long scaled(long n) {
#ifdef WEFT_SANITIZED
  return std::max<long>(1, n / 20);
#else
  return n;
#endif
}

/// Polls pred until it holds or a generous deadline passes: the tests wait
/// for states, never for fixed times.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// Blocks jobs until opened.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return open_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

ThreadPoolExecutor::Options with_keep_alive(std::size_t max_workers,
                                            std::chrono::nanoseconds keep_alive) {
  ThreadPoolExecutor::Options options;
  options.max_workers = max_workers;
  options.keep_alive = keep_alive;
  return options;
}

TEST(ThreadPoolExecutor, StartsWithNoThreads) {
  ThreadPoolExecutor pool;
  const auto stats = pool.stats();
  EXPECT_EQ(stats.threads, 0u);
  EXPECT_EQ(stats.idle, 0u);
  EXPECT_EQ(stats.busy, 0u);
  EXPECT_EQ(stats.queued, 0u);
  EXPECT_EQ(stats.spawned_total, 0u);
  EXPECT_EQ(pool.options().max_workers, 512u);
  EXPECT_EQ(pool.options().keep_alive, 10s);
}

TEST(ThreadPoolExecutor, RejectsZeroWorkersAndNegativeKeepAlive) {
  EXPECT_THROW(ThreadPoolExecutor(0), weft::ValueError);
  EXPECT_THROW(ThreadPoolExecutor(with_keep_alive(1, -1ms)), weft::ValueError);
}

TEST(ThreadPoolExecutor, RejectsAnEmptyFunction) {
  ThreadPoolExecutor pool;
  EXPECT_THROW(pool.submit({}), weft::ValueError);
}

TEST(ThreadPoolExecutor, GrowsOnlyWhenNoThreadIsIdle) {
  // Everything the jobs touch outlives the pool: its destructor joins threads
  // that may still be inside gate.wait() after gate.open() returns.
  Gate gate;
  std::atomic<int> ran{0}, started{0};
  ThreadPoolExecutor pool(4);
  for (int i = 1; i <= 3; ++i) {
    pool.submit([&] { ++ran; });
    ASSERT_TRUE(eventually([&] { return ran == i && pool.stats().idle == 1; }));
    EXPECT_EQ(pool.stats().spawned_total, 1u) << "an idle thread was there to reuse";
  }
  // Two blocking jobs: the idle thread takes one, a new thread the other.
  for (int i = 0; i < 2; ++i) pool.submit([&] { ++started, gate.wait(); });
  ASSERT_TRUE(eventually([&] { return started == 2; }));
  const auto stats = pool.stats();
  EXPECT_EQ(stats.spawned_total, 2u);
  EXPECT_EQ(stats.threads, 2u);
  EXPECT_EQ(stats.busy, 2u);
  EXPECT_EQ(stats.idle, 0u);
  gate.open();
}

TEST(ThreadPoolExecutor, NeverExceedsMaxWorkers) {
  constexpr int kJobs = 100;
  Gate gate;
  std::atomic<int> running{0}, peak{0}, ran{0};
  ThreadPoolExecutor pool(4);
  for (int i = 0; i < kJobs; ++i) {
    pool.submit([&] {
      const int now = ++running;
      int seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
      gate.wait();
      --running;
      ++ran;
    });
  }
  ASSERT_TRUE(eventually([&] { return running == 4; }));
  auto stats = pool.stats();
  EXPECT_EQ(stats.threads, 4u);
  EXPECT_EQ(stats.busy, 4u);
  EXPECT_EQ(stats.queued, static_cast<std::size_t>(kJobs - 4));
  gate.open();
  pool.shutdown(true);
  stats = pool.stats();
  EXPECT_EQ(ran, kJobs);
  EXPECT_LE(peak, 4);
  EXPECT_EQ(stats.spawned_total, 4u);
  EXPECT_EQ(stats.completed_total, static_cast<std::uint64_t>(kJobs));
  EXPECT_EQ(stats.threads, 0u);
}

TEST(ThreadPoolExecutor, IdleThreadsRetireAfterKeepAlive) {
  Gate gate;
  std::atomic<int> started{0};
  std::atomic<bool> ran{false};
  ThreadPoolExecutor pool(with_keep_alive(8, 50ms));
  for (int i = 0; i < 3; ++i) pool.submit([&] { ++started, gate.wait(); });
  ASSERT_TRUE(eventually([&] { return started == 3; }));
  EXPECT_EQ(pool.stats().threads, 3u);
  gate.open();
  ASSERT_TRUE(eventually([&] { return pool.stats().threads == 0; }));
  const auto stats = pool.stats();
  EXPECT_EQ(stats.retired_total, 3u);
  EXPECT_EQ(stats.idle, 0u);

  // Work after retirement starts a fresh thread.
  pool.submit([&] { ran = true; });
  ASSERT_TRUE(eventually([&] { return ran.load(); }));
  EXPECT_EQ(pool.stats().spawned_total, 4u);
}

TEST(ThreadPoolExecutor, ZeroKeepAliveRetiresAsSoonAsTheQueueIsEmpty) {
  std::atomic<int> ran{0};
  ThreadPoolExecutor pool(with_keep_alive(2, 0ns));
  for (int i = 0; i < 20; ++i) pool.submit([&] { ++ran; });
  ASSERT_TRUE(eventually([&] { return ran == 20 && pool.stats().threads == 0; }));
}

TEST(ThreadPoolExecutor, SubmitAfterShutdownThrowsRuntimeError) {
  for (const bool wait : {true, false}) {
    ThreadPoolExecutor pool;
    pool.submit([] {});
    pool.shutdown(wait);
    try {
      pool.submit([] {});
      ADD_FAILURE() << "submit after shutdown did not throw";
    } catch (const weft::RuntimeError& e) {
      EXPECT_STREQ(e.what(), "ThreadPoolExecutor::submit: executor is shut down");
    }
    pool.shutdown(wait);  // idempotent
  }
}

TEST(ThreadPoolExecutor, ShutdownWaitRunsQueuedJobs) {
  Gate gate;
  std::atomic<int> ran{0};
  ThreadPoolExecutor pool(1);
  pool.submit([&] { gate.wait(); });
  for (int i = 0; i < 10; ++i) pool.submit([&] { ++ran; });
  std::thread opener([&] {
    std::this_thread::sleep_for(10ms);  // let shutdown start waiting first (either order passes)
    gate.open();
  });
  pool.shutdown(true);
  EXPECT_EQ(ran, 10);
  const auto stats = pool.stats();
  EXPECT_EQ(stats.threads, 0u);
  EXPECT_EQ(stats.queued, 0u);
  EXPECT_EQ(stats.completed_total, 11u);
  opener.join();
}

TEST(ThreadPoolExecutor, ShutdownWithoutWaitReturnsAtOnceAndQueuedJobsStillRun) {
  Gate gate;
  std::atomic<int> ran{0};
  ThreadPoolExecutor pool(1);
  pool.submit([&] { gate.wait(); });
  for (int i = 0; i < 10; ++i) pool.submit([&] { ++ran; });
  pool.shutdown(false);  // the gate is closed: waiting here would never return
  EXPECT_EQ(ran, 0);
  gate.open();
  ASSERT_TRUE(eventually([&] { return ran == 10 && pool.stats().threads == 0; }));
}

TEST(ThreadPoolExecutor, DestructorRunsQueuedJobs) {
  std::atomic<int> ran{0};
  {
    ThreadPoolExecutor pool(2);
    for (int i = 0; i < 50; ++i) pool.submit([&] { std::this_thread::sleep_for(100us), ++ran; });
  }
  EXPECT_EQ(ran, 50);
}

TEST(ThreadPoolExecutor, EveryConcurrentShutdownWaitReturnsAfterTheJobs) {
  Gate gate;
  std::atomic<bool> finished{false};
  ThreadPoolExecutor pool(1);
  pool.submit([&] { gate.wait(), finished = true; });
  std::atomic<int> saw_finished{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i) {
    callers.emplace_back([&] {
      pool.shutdown(true);
      if (finished) ++saw_finished;
    });
  }
  gate.open();
  for (auto& t : callers) t.join();
  EXPECT_EQ(saw_finished, 4);
}

TEST(ThreadPoolExecutor, ShutdownWaitOnAPoolThreadThrows) {
  ThreadPoolExecutor pool(1);
  std::atomic<bool> threw{false};
  pool.submit([&] {
    try {
      pool.shutdown(true);
    } catch (const weft::RuntimeError&) {
      threw = true;
    }
  });
  pool.shutdown(true);
  EXPECT_TRUE(threw);
}

TEST(ThreadPoolExecutor, ThrowingJobDoesNotKillThePool) {
  ThreadPoolExecutor pool(1);
  std::atomic<bool> ran_after{false};
  ::testing::internal::CaptureStderr();
  pool.submit([] { throw std::runtime_error("boom from a job"); });
  pool.submit([] { throw 42; });
  pool.submit([&] { ran_after = true; });
  pool.shutdown(true);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(ran_after);
  EXPECT_EQ(pool.stats().spawned_total, 1u) << "the same thread carried on";
  EXPECT_EQ(pool.stats().completed_total, 3u);
  EXPECT_NE(err.find("boom from a job"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown exception"), std::string::npos) << err;
}

TEST(ThreadPoolExecutor, ThreadsCarryTheNamePrefixCutTo15Characters) {
  ThreadPoolExecutor::Options options;
  options.thread_name_prefix = "a-very-long-thread-name";
  ThreadPoolExecutor pool(options);
  std::string name;
  pool.submit([&] {
    char buffer[16] = {};
    pthread_getname_np(pthread_self(), buffer, sizeof buffer);
    name = buffer;
  });
  pool.shutdown(true);
  EXPECT_EQ(name, "a-very-long-thr");
}

TEST(ThreadPoolExecutor, ThousandConcurrentSleepsFinishFast) {
  // A sanity check that sleeping jobs overlap, not a benchmark: 1000 x 10 ms
  // run one after another would take 10 s.
  const long jobs = scaled(1000);
  ThreadPoolExecutor pool(1000);
  std::atomic<long> ran{0};
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < jobs; ++i) pool.submit([&] { std::this_thread::sleep_for(10ms), ++ran; });
  pool.shutdown(true);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ran, jobs);
  EXPECT_LT(elapsed, 5s);
  EXPECT_LE(pool.stats().spawned_total, static_cast<std::uint64_t>(jobs));
}

TEST(ThreadPoolExecutor, EightSubmittersCountExactly) {
  const long per_submitter = scaled(20000);
  constexpr int kSubmitters = 8;
  ThreadPoolExecutor pool(4);
  std::atomic<long> ran{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) {
    submitters.emplace_back([&] {
      for (long i = 0; i < per_submitter; ++i) pool.submit([&] { ran.fetch_add(1); });
    });
  }
  for (auto& t : submitters) t.join();
  pool.shutdown(true);
  EXPECT_EQ(ran, kSubmitters * per_submitter);
  const auto stats = pool.stats();
  EXPECT_EQ(stats.completed_total, static_cast<std::uint64_t>(kSubmitters * per_submitter));
  EXPECT_LE(stats.spawned_total, 4u);
  EXPECT_EQ(stats.threads, 0u);
}

TEST(ThreadPoolExecutor, SubmitAndRetireRaceLosesNoJob) {
  // keep_alive 0: threads retire whenever the queue runs dry, so submissions
  // keep racing with retirement and the join-your-predecessor chain.
  const long jobs = scaled(20000);
  ThreadPoolExecutor pool(with_keep_alive(3, 0ns));
  std::atomic<long> ran{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 2; ++t) {
    submitters.emplace_back([&] {
      for (long i = 0; i < jobs; ++i) pool.submit([&] { ran.fetch_add(1); });
    });
  }
  for (auto& t : submitters) t.join();
  ASSERT_TRUE(eventually([&] { return ran == 2 * jobs && pool.stats().threads == 0; }));
  const auto stats = pool.stats();
  EXPECT_EQ(stats.retired_total, stats.spawned_total);
  EXPECT_EQ(stats.completed_total, static_cast<std::uint64_t>(2 * jobs));
}

// --- spinning before blocking (issue 5: the < 5 us round trip) ---

ThreadPoolExecutor::Options with_spin(std::size_t max_workers, std::chrono::nanoseconds spin) {
  ThreadPoolExecutor::Options options;
  options.max_workers = max_workers;
  options.keep_alive = 1h;
  options.spin = spin;
  return options;
}

/// Spinning needs a second CPU for the submitter; the pool never spins without.
bool pool_can_spin() { return std::thread::hardware_concurrency() >= 2; }

TEST(ThreadPoolExecutor, NegativeSpinIsAValueError) {
  EXPECT_THROW(ThreadPoolExecutor(with_spin(1, -1ns)), weft::ValueError);
}

TEST(ThreadPoolExecutor, SubmitToASpinningThreadNeedsNoWakeupAndDoesNotGrowThePool) {
  if (!pool_can_spin()) GTEST_SKIP() << "one CPU: the pool does not spin";
  // A spin far longer than the test: the thread is spinning, not blocked,
  // whenever the second function arrives.
  ThreadPoolExecutor pool(with_spin(8, 1h));
  std::atomic<int> ran{0};
  pool.submit([&] { ran.fetch_add(1); });
  ASSERT_TRUE(eventually([&] { return ran == 1 && pool.stats().spinning == 1; }));
  auto stats = pool.stats();
  EXPECT_EQ(stats.idle, 1u);
  EXPECT_EQ(stats.threads, 1u);
  pool.submit([&] { ran.fetch_add(1); });
  ASSERT_TRUE(eventually([&] { return ran == 2; }));
  stats = pool.stats();
  EXPECT_EQ(stats.spawned_total, 1u);
  EXPECT_EQ(stats.spin_handoffs_total, 1u);
  EXPECT_EQ(stats.wakeups_total, 0u);
  // ~ThreadPoolExecutor: shutdown stops the spinner at once, not after an hour.
}

TEST(ThreadPoolExecutor, AtMostOneSpinnerPerFourCpusTheOthersBlock) {
  if (!pool_can_spin()) GTEST_SKIP() << "one CPU: the pool does not spin";
  const std::size_t max_spinning = std::max(1u, std::thread::hardware_concurrency() / 4);
  const std::size_t threads = max_spinning + 2;
  Gate gate;
  std::atomic<std::size_t> started{0}, ran{0};
  ThreadPoolExecutor pool(with_spin(threads, 1h));
  for (std::size_t i = 0; i < threads; ++i) {
    pool.submit([&] {
      started.fetch_add(1);
      gate.wait();
    });
  }
  ASSERT_TRUE(eventually([&] { return started == threads; }));
  gate.open();
  ASSERT_TRUE(eventually([&] { return pool.stats().idle == threads; }));
  EXPECT_EQ(pool.stats().spinning, max_spinning);
  // Every submit finds an idle thread: handed to the spinners first, then
  // woken; the pool never grows.
  for (std::size_t i = 0; i < threads; ++i) pool.submit([&] { ran.fetch_add(1); });
  ASSERT_TRUE(eventually([&] { return ran == threads; }));
  const auto stats = pool.stats();
  EXPECT_EQ(stats.spawned_total, threads);
  EXPECT_EQ(stats.spin_handoffs_total + stats.wakeups_total, threads);
  EXPECT_GE(stats.spin_handoffs_total, 1u);
}

TEST(ThreadPoolExecutor, AnIdleThreadStopsSpinningAndBlocks) {
  ThreadPoolExecutor pool(with_spin(4, 1ms));
  std::atomic<int> ran{0};
  pool.submit([&] { ran.fetch_add(1); });
  // The spin is bounded: the thread ends up blocked on its condition
  // variable (no CPU), still alive for keep_alive.
  ASSERT_TRUE(eventually([&] {
    const auto s = pool.stats();
    return ran == 1 && s.idle == 1 && s.spinning == 0;
  }));
  EXPECT_EQ(pool.stats().threads, 1u);
  pool.submit([&] { ran.fetch_add(1); });
  ASSERT_TRUE(eventually([&] { return ran == 2; }));
  const auto stats = pool.stats();
  EXPECT_EQ(stats.spawned_total, 1u);
  EXPECT_EQ(stats.wakeups_total, 1u);  // it was blocked: a real wake-up
  EXPECT_EQ(stats.spin_handoffs_total, 0u);
}

TEST(ThreadPoolExecutor, SpinZeroNeverSpins) {
  ThreadPoolExecutor pool(with_spin(2, 0ns));
  std::atomic<int> ran{0};
  for (int i = 1; i <= 20; ++i) {
    pool.submit([&] { ran.fetch_add(1); });
    ASSERT_TRUE(eventually([&] { return ran == i; }));
    EXPECT_EQ(pool.stats().spinning, 0u);
  }
  EXPECT_EQ(pool.stats().spin_handoffs_total, 0u);
}

TEST(ThreadPoolExecutor, ShutdownStopsASpinningThread) {
  if (!pool_can_spin()) GTEST_SKIP() << "one CPU: the pool does not spin";
  ThreadPoolExecutor pool(with_spin(2, 1h));
  pool.submit([] {});
  ASSERT_TRUE(eventually([&] { return pool.stats().spinning == 1; }));
  pool.shutdown(true);  // returns once the spinner has seen shut_down and exited
  const auto stats = pool.stats();
  EXPECT_EQ(stats.threads, 0u);
  EXPECT_EQ(stats.spinning, 0u);
  EXPECT_EQ(stats.retired_total, 0u);
}

TEST(ThreadPoolExecutor, ConcurrentSubmitsRacingSpinnersLoseNone) {
  // Submitters that alternate bursts with waits keep the threads moving
  // between busy, spinning and blocked while functions arrive; every one runs
  // exactly once. Short spins so that both hand-off paths are taken.
  for (std::size_t max_workers : {std::size_t{1}, std::size_t{3}, std::size_t{64}}) {
    ThreadPoolExecutor pool(with_spin(max_workers, 20us));
    constexpr int kSubmitters = 4;
    const long per_submitter = scaled(4000);
    std::atomic<long> ran{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < kSubmitters; ++t) {
      submitters.emplace_back([&, t] {
        for (long i = 0; i < per_submitter; ++i) {
          std::atomic<bool> done{false};
          pool.submit([&ran, &done] {
            ran.fetch_add(1);
            done.store(true, std::memory_order_release);
          });
          // Mostly a second function right behind the first, racing the
          // thread that is about to take it; every seventh time just one.
          if ((i + t) % 7 != 0) pool.submit([&ran] { ran.fetch_add(1); });
          // done lives on this stack: wait before the next round reuses it.
          while (!done.load(std::memory_order_acquire)) std::this_thread::yield();
        }
      });
    }
    for (auto& t : submitters) t.join();
    pool.shutdown(true);
    long expected = 0;
    for (int t = 0; t < kSubmitters; ++t)
      for (long i = 0; i < per_submitter; ++i) expected += (i + t) % 7 == 0 ? 1 : 2;
    EXPECT_EQ(ran, expected) << "max_workers " << max_workers;
    const auto stats = pool.stats();
    EXPECT_EQ(stats.completed_total, static_cast<std::uint64_t>(expected));
    EXPECT_LE(stats.spawned_total, max_workers);
    EXPECT_EQ(stats.threads, 0u);
    EXPECT_EQ(stats.spinning, 0u);
  }
}

}  // namespace

// Runtime metrics, their Prometheus rendering (parsed by Debian's
// python3-prometheus-client) and the RunOptions hooks.
#include <weft/weft.hpp>

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <string>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

class Metrics : public weft::testing::WorkersTest {};
class Hooks : public weft::testing::WorkersTest {};
INSTANTIATE_TEST_SUITE_P(Workers, Metrics, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);
INSTANTIATE_TEST_SUITE_P(Workers, Hooks, weft::testing::kWorkerCounts, weft::testing::worker_name);

weft::Coro<int> nap_twice() {
  co_await weft::sleep(1ms);
  co_await weft::sleep(0s);
  co_return 1;
}

weft::Coro<int> nap_many(int n) {
  std::vector<weft::Task<int>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(weft::create_task(nap_twice()));
  int sum = 0;
  for (auto& t : tasks) sum += co_await t;
  co_return sum;
}

TEST_P(Metrics, CountStepsTimersAndBusyTime) {
  weft::Runtime rt({.workers = GetParam()});
  EXPECT_EQ(rt.block_on(nap_many(200)), 200);
  weft::RuntimeMetrics m = rt.metrics();
  ASSERT_EQ(m.workers.size(), GetParam());
  // Each napper: a first step and one after each sleep; the main task more.
  EXPECT_GE(m.total.steps_polled, 3u * 200u);
  EXPECT_GE(m.total.timers_armed, 200u);
  EXPECT_GT(m.total.busy_time.count(), 0);
  EXPECT_FALSE(m.poll_time_histogram);
  for (std::uint64_t n : m.total.poll_time_histogram) EXPECT_EQ(n, 0u);
  std::uint64_t polls = 0;
  for (const auto& w : m.workers) polls += w.steps_polled;
  EXPECT_EQ(polls, m.total.steps_polled);
}

TEST_P(Metrics, PollTimeHistogramCountsEveryStep) {
  weft::Runtime rt({.workers = GetParam(), .poll_time_histogram = true});
  rt.block_on(nap_many(100));
  weft::RuntimeMetrics m = rt.metrics();
  EXPECT_TRUE(m.poll_time_histogram);
  std::uint64_t counted = std::accumulate(m.total.poll_time_histogram.begin(),
                                          m.total.poll_time_histogram.end(), std::uint64_t{0});
  EXPECT_EQ(counted, m.total.steps_polled);
  EXPECT_GT(m.total.poll_time_sum.count(), 0);
}

TEST(MetricsBuckets, LogBucketBoundsDouble) {
  EXPECT_EQ(weft::poll_time_bucket_bound_ns(0), 1000u);
  EXPECT_EQ(weft::poll_time_bucket_bound_ns(1), 2000u);
  EXPECT_EQ(weft::poll_time_bucket_bound_ns(10), 1024000u);
}

weft::Coro<void> echo_once() {
  weft::ClientHandler handler = [](weft::StreamReader r, weft::StreamWriter w) -> weft::Coro<void> {
    std::string line = co_await r.readline();
    w.write(line);
    co_await w.drain();
    w.close();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets()[0].port());
  w.write("ping\n");
  co_await w.drain();
  std::string reply = co_await r.readline();
  EXPECT_EQ(reply, "ping\n");
  w.close();
  server.close();
  co_await server.wait_closed();
}

TEST(MetricsIo, CountsIoOperations) {
  weft::Runtime rt({.workers = 1});
  rt.block_on(echo_once());
  weft::RuntimeMetrics m = rt.metrics();
  // The accept is a readiness callback; the stream reads and writes go
  // through io_uring or, without it, through readiness callbacks.
  EXPECT_GE(m.total.io_readable, 1u);
  EXPECT_GE(m.total.io_readable + m.total.io_ring_recvs, 2u);
  EXPECT_GE(m.total.io_writable + m.total.io_ring_sends + m.total.io_readable, 2u);
}

TEST(Prometheus, RendersEveryFamilyWithWorkerLabels) {
  weft::Runtime rt({.workers = 2, .poll_time_histogram = true});
  rt.block_on(nap_many(10));
  std::string text = weft::prometheus_text(rt.metrics());
  for (const char* family :
       {"# TYPE weft_worker_busy_seconds_total counter", "# TYPE weft_worker_polls_total counter",
        "# TYPE weft_worker_steal_operations_total counter",
        "# TYPE weft_worker_stolen_tasks_total counter", "# TYPE weft_worker_parks_total counter",
        "# TYPE weft_worker_local_queue_depth gauge", "# TYPE weft_worker_inbox_depth gauge",
        "# TYPE weft_injection_queue_depth gauge", "# TYPE weft_worker_timers_armed_total counter",
        "# TYPE weft_worker_poll_duration_seconds histogram",
        "weft_worker_io_operations_total{worker=\"1\",kind=\"ring_send\"}",
        "weft_worker_poll_duration_seconds_bucket{worker=\"0\",le=\"+Inf\"}"})
    EXPECT_NE(text.find(family), std::string::npos) << family << "\n" << text;
}

#ifndef WEFT_PROMETHEUS_PYTHON
#define WEFT_PROMETHEUS_PYTHON ""
#endif

TEST(Prometheus, ParsesWithPrometheusClient) {
  std::string python = WEFT_PROMETHEUS_PYTHON;
  ASSERT_FALSE(python.empty())
      << "no python3 with prometheus_client was found at configure time: "
         "scripts/install-deps installs Debian's python3-prometheus-client";
  weft::Runtime rt({.workers = 2, .poll_time_histogram = true});
  rt.block_on(nap_many(10));
  std::string text = weft::prometheus_text(rt.metrics());
  char path[] = "/tmp/weft_metrics_XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  // The parser raises on malformed input; the script prints what it parsed.
  std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}\n"
      "polls = sum(s.value for s in fams['weft_worker_polls'].samples)\n"
      "h = fams['weft_worker_poll_duration_seconds']\n"
      "assert h.type == 'histogram', h.type\n"
      "count = sum(s.value for s in h.samples if s.name.endswith('_count'))\n"
      "assert count == polls, (count, polls)\n"
      "assert fams['weft_worker_busy_seconds'].type == 'counter'\n"
      "assert fams['weft_tasks_alive'].type == 'gauge'\n"
      "print('families', len(fams), 'polls', int(polls))\n";
  std::string command = python + " -c \"$WEFT_SCRIPT\" " + path + " 2>&1";
  ::setenv("WEFT_SCRIPT", script.c_str(), 1);
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  int status = ::pclose(pipe);
  ::unsetenv("WEFT_SCRIPT");
  ::unlink(path);
  EXPECT_EQ(status, 0) << out << "\n" << text;
  EXPECT_NE(out.find("families "), std::string::npos) << out;
}

TEST_P(Hooks, SeeEverySpawnStepAndTermination) {
  static std::atomic<long> spawned, started, ended, terminated, parks, unparks;
  for (auto* c : {&spawned, &started, &ended, &terminated, &parks, &unparks}) c->store(0);
  weft::RunOptions options{.workers = GetParam()};
  options.on_task_spawn = [](const weft::TaskMeta& t) {
    EXPECT_GT(t.id(), 0u);
    spawned.fetch_add(1);
  };
  options.on_task_poll_start = [](const weft::TaskMeta&) { started.fetch_add(1); };
  options.on_task_poll_end = [](const weft::TaskMeta&) { ended.fetch_add(1); };
  options.on_task_terminate = [](const weft::TaskMeta& t) {
    EXPECT_TRUE(t.task().done());
    terminated.fetch_add(1);
  };
  options.on_worker_park = [](unsigned) { parks.fetch_add(1); };
  options.on_worker_unpark = [](unsigned) { unparks.fetch_add(1); };
  {
    weft::Runtime rt(options);
    rt.block_on(nap_many(100));
    weft::RuntimeMetrics m = rt.metrics();
    EXPECT_EQ(static_cast<std::uint64_t>(started.load()), m.total.steps_polled);
    rt.shutdown(5s);
  }
  EXPECT_EQ(spawned.load(), 101);  // the nappers and block_on's task
  EXPECT_EQ(terminated.load(), 101);
  EXPECT_EQ(started.load(), ended.load());
  EXPECT_GE(started.load(), 3 * 100);
  EXPECT_GE(parks.load(), 1);  // the 1 ms sleeps leave the workers idle
  EXPECT_EQ(parks.load(), unparks.load());
}

weft::Coro<void> refuses_to_die() {
  for (;;) {
    try {
      co_await weft::sleep(1h);
    } catch (const weft::CancelledError&) {
    }
  }
}

TEST_P(Hooks, TerminateSeesTasksDestroyedPendingAtShutdown) {
  static std::atomic<int> terminated, stubborn_cancelled;
  terminated = 0;
  stubborn_cancelled = 0;
  weft::RunOptions options{.workers = GetParam()};
  options.on_task_terminate = [](const weft::TaskMeta& t) {
    EXPECT_TRUE(t.task().done());
    terminated.fetch_add(1);
    if (t.name() == "stubborn" && t.task().cancelled()) stubborn_cancelled.fetch_add(1);
  };
  {
    weft::Runtime rt(options);
    weft::TaskOptions o{.name = "stubborn"};
    auto stubborn = rt.spawn(refuses_to_die(), o);
    rt.block_on(weft::sleep(1ms));
    ::testing::internal::CaptureStderr();
    rt.shutdown(20ms);
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("destroyed but it is pending: stubborn"), std::string::npos) << err;
  }
  EXPECT_EQ(terminated.load(), 2);  // block_on's task, and the stubborn one at shutdown
  EXPECT_EQ(stubborn_cancelled.load(), 1);
}

TEST(HooksNames, SpawnHookSeesTheTaskName) {
  static std::atomic<int> named;
  named = 0;
  weft::RunOptions options{.workers = 1};
  options.on_task_spawn = [](const weft::TaskMeta& t) {
    if (t.name() == "napper") named.fetch_add(1);
  };
  weft::Runtime rt(options);
  rt.block_on([]() -> weft::Coro<void> {
    weft::TaskOptions o{.name = "napper"};
    co_await weft::create_task(nap_twice(), o);
  }());
  EXPECT_EQ(named.load(), 1);
}

// ------------------------------------------------------------------ stall detector

namespace stall {

std::mutex mu;
std::vector<weft::StallReport> reports;  // guarded by mu

void collect(const weft::StallReport& r) {
  std::lock_guard lock(mu);
  reports.push_back(r);
}

std::vector<weft::StallReport> take() {
  std::lock_guard lock(mu);
  return std::exchange(reports, {});
}

/// Holds its worker: a step that does not return for `d`.
weft::Coro<void> hog(std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
  co_return;
}

/// Naps, then holds its worker: the stalled step starts after a suspension
/// in nap_inside() (a sleep awaited through a Coro).
weft::Coro<void> nap_inside() { co_await weft::sleep(1ms); }
weft::Coro<void> nap_then_hog(std::chrono::milliseconds d) {
  co_await nap_inside();
  co_await hog(d);
}

}  // namespace stall

class Stall : public weft::testing::WorkersTest {};
INSTANTIATE_TEST_SUITE_P(Workers, Stall, weft::testing::kWorkerCounts, weft::testing::worker_name);

TEST_P(Stall, ReportsTheTaskHoldingItsWorkerOnce) {
  stall::take();
  weft::RunOptions options{
      .workers = GetParam(), .stall_threshold = 20ms, .stall_report_interval = 0ns};
  options.on_stall = stall::collect;
  options.stall_backtrace = true;
  {
    weft::Runtime rt(options);
    rt.block_on([]() -> weft::Coro<void> {
      weft::TaskOptions o{.name = "hog"};
      co_await weft::create_task(stall::hog(300ms), o);
    }());
    rt.shutdown(5s);
  }
  // One stall, reported once however long it lasts. (A loaded machine may
  // starve a worker into a stall of its own; only the hog's are counted, and
  // no rate limit lets such a report hold the hog's back.)
  std::vector<weft::StallReport> got = stall::take();
  std::erase_if(got, [](const weft::StallReport& r) { return r.task_name != "hog"; });
  ASSERT_EQ(got.size(), 1u);
  const weft::StallReport& r = got[0];
  EXPECT_EQ(r.task_name, "hog");
  EXPECT_GT(r.task_id, 0u);
  EXPECT_LT(r.worker, GetParam());
  EXPECT_GE(r.stalled_for, 20ms);
#ifndef WEFT_TSAN  // TSan holds signals back until the thread calls into its runtime
  EXPECT_FALSE(r.backtrace.empty()) << r.to_string();
#endif
  std::string text = r.to_string();
  EXPECT_NE(text.find("stalled for"), std::string::npos) << text;
  EXPECT_NE(text.find("<Task hog"), std::string::npos) << text;
}

TEST_P(Stall, WithAwaitChainReportsWhatTheTaskAwaitedBeforeTheStalledStep) {
  stall::take();
  weft::RunOptions options{
      .workers = GetParam(), .stall_threshold = 20ms, .stall_report_interval = 0ns};
  options.on_stall = stall::collect;
  options.stall_await_chain = true;
  {
    weft::Runtime rt(options);
    rt.block_on([]() -> weft::Coro<void> {
      weft::TaskOptions o{.name = "hog"};
      co_await weft::create_task(stall::nap_then_hog(300ms), o);
    }());
    rt.shutdown(5s);
  }
  std::vector<weft::StallReport> got = stall::take();
  std::erase_if(got, [](const weft::StallReport& r) { return r.task_name != "hog"; });
  ASSERT_EQ(got.size(), 1u);
  const weft::StallReport& r = got[0];
  // nap_then_hog > nap_inside > sleep, awaiting the sleep.
  ASSERT_EQ(r.await_chain.size(), 4u) << r.to_string();
  EXPECT_NE(r.await_chain[0].find("nap_then_hog"), std::string::npos) << r.to_string();
  EXPECT_NE(r.await_chain[0].find("observability_test.cpp:"), std::string::npos);
  EXPECT_NE(r.await_chain[1].find("nap_inside"), std::string::npos) << r.to_string();
  EXPECT_NE(r.await_chain[2].find("sleep"), std::string::npos) << r.to_string();
  EXPECT_EQ(r.await_chain[3], "awaits sleep") << r.to_string();
  EXPECT_NE(r.to_string().find("at its last suspension:"), std::string::npos);
}

TEST_P(Stall, WithoutAwaitChainTheReportHasNone) {
  stall::take();
  weft::RunOptions options{
      .workers = GetParam(), .stall_threshold = 20ms, .stall_report_interval = 0ns};
  options.on_stall = stall::collect;
  {
    weft::Runtime rt(options);
    rt.block_on([]() -> weft::Coro<void> {
      weft::TaskOptions o{.name = "hog"};
      co_await weft::create_task(stall::nap_then_hog(100ms), o);
    }());
    rt.shutdown(5s);
  }
  std::vector<weft::StallReport> got = stall::take();
  std::erase_if(got, [](const weft::StallReport& r) { return r.task_name != "hog"; });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].await_chain.empty());
}

// Without stall_backtrace the worker is never signalled: a blocking call in
// the stalled step (poll never restarts after a signal) sees no EINTR.
TEST_P(Stall, WithoutBacktraceABlockingCallInTheStalledStepIsNotInterrupted) {
  stall::take();
  weft::RunOptions options{
      .workers = GetParam(), .stall_threshold = 20ms, .stall_report_interval = 0ns};
  options.on_stall = stall::collect;
  std::atomic<int> poll_result{-2};
  std::atomic<int> poll_errno{0};
  {
    weft::Runtime rt(options);
    auto blocking_poll = [&]() -> weft::Coro<void> {
      int r = ::poll(nullptr, 0, 150);
      poll_errno = errno;
      poll_result = r;
      co_return;
    };
    rt.block_on([&]() -> weft::Coro<void> {
      weft::TaskOptions o{.name = "poller"};
      co_await weft::create_task(blocking_poll(), o);
    }());
  }
  EXPECT_EQ(poll_result.load(), 0) << "errno " << poll_errno.load();
  std::vector<weft::StallReport> got = stall::take();
  std::erase_if(got, [](const weft::StallReport& r) { return r.task_name != "poller"; });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].backtrace.empty());
  EXPECT_NE(got[0].note.find("stall_backtrace"), std::string::npos) << got[0].note;
}

TEST_P(Stall, IdleWorkersAreNotStalled) {
  stall::take();
  weft::RunOptions options{.workers = GetParam(), .stall_threshold = 150ms};
  options.on_stall = stall::collect;
  {
    weft::Runtime rt(options);
    rt.block_on([]() -> weft::Coro<void> { co_await weft::sleep(600ms); }());
  }
  EXPECT_TRUE(stall::take().empty());
}

TEST(StallRateLimit, StallsCloserThanTheIntervalAreCountedNotReported) {
  stall::take();
  weft::RunOptions options{.workers = 1, .stall_threshold = 20ms, .stall_report_interval = 60s};
  options.on_stall = stall::collect;
  {
    weft::Runtime rt(options);
    rt.block_on([]() -> weft::Coro<void> {
      co_await weft::create_task(stall::hog(100ms));
      co_await weft::sleep(0s);
      co_await weft::create_task(stall::hog(100ms));
    }());
  }
  std::vector<weft::StallReport> got = stall::take();
  std::erase_if(got, [](const weft::StallReport& r) { return r.task_id == 0; });
  EXPECT_EQ(got.size(), 1u);
}

TEST(StallOff, ZeroThresholdStartsNoWatchdog) {
  stall::take();
  weft::RunOptions options{.workers = 1, .stall_threshold = 0ns};
  options.on_stall = stall::collect;
  {
    weft::Runtime rt(options);
    rt.block_on(stall::hog(100ms));
  }
  EXPECT_TRUE(stall::take().empty());
}

}  // namespace

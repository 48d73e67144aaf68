// Bad input to the executor core (issue 2): every misuse below must raise a
// typed weft error with a clear message, never crash, hang or leak.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

/// EXPECT that `stmt` throws `Error` whose what() contains `needle`.
#define EXPECT_THROW_WITH(stmt, Error, needle)                                      \
  do {                                                                              \
    try {                                                                           \
      stmt;                                                                         \
      ADD_FAILURE() << #stmt " did not throw";                                      \
    } catch (const Error& e) {                                                      \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what(); \
    }                                                                               \
  } while (0)

weft::Coro<int> one() { co_return 1; }

WEFT_TEST(BadInput, AwaitingAMovedFromCoro) {
  weft::Coro<int> a = one();
  weft::Coro<int> b = std::move(a);
  bool raised = false;
  try {
    (void)co_await std::move(a);  // NOLINT(bugprone-use-after-move)
  } catch (const weft::RuntimeError& e) {
    raised = std::string(e.what()).find("moved-from") != std::string::npos;
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(co_await std::move(b), 1);
}

TEST(BadInput, CreateTaskOfAMovedFromCoro) {
  weft::EventLoop loop;
  weft::Coro<int> a = one();
  weft::Coro<int> b = std::move(a);
  EXPECT_THROW_WITH(loop.create_task(std::move(a)), weft::RuntimeError, "moved-from");
  EXPECT_EQ(loop.run_until_complete(std::move(b)), 1);
}

TEST(BadInput, RunUntilCompleteOnAClosedLoop) {
  weft::EventLoop loop;
  loop.close();
  EXPECT_THROW_WITH(loop.run_until_complete(one()), weft::RuntimeError, "closed");
  EXPECT_THROW_WITH(loop.run_forever(), weft::RuntimeError, "closed");
  EXPECT_THROW_WITH(loop.call_soon([] {}), weft::RuntimeError, "closed");
  EXPECT_THROW_WITH(loop.call_later(1ms, [] {}), weft::RuntimeError, "closed");
  EXPECT_THROW_WITH(loop.create_task(one()), weft::RuntimeError, "closed");
}

weft::Coro<void> nested(weft::EventLoop* loop, std::string* what) {
  try {
    loop->run_until_complete(one());
  } catch (const weft::RuntimeError& e) {
    *what = e.what();
  }
  co_return;
}

TEST(BadInput, RunUntilCompleteNestedInsideARunningLoop) {
  weft::EventLoop loop;
  std::string what;
  loop.run_until_complete(nested(&loop, &what));
  EXPECT_NE(what.find("already running"), std::string::npos) << what;
  // Another loop started from inside a running one is refused too.
  weft::EventLoop other;
  loop.run_until_complete(nested(&other, &what));
  EXPECT_NE(what.find("already running"), std::string::npos) << what;
}

TEST(BadInput, RunUntilCompleteOnARuntimeWorkerLoop) {
  weft::Runtime rt({.workers = 1});
  EXPECT_THROW_WITH(rt.loop(0).run_until_complete(one()), weft::RuntimeError, "runtime worker");
  EXPECT_THROW_WITH(rt.loop(1), weft::ValueError, "out of range");
}

TEST(BadInput, SetResultTwiceAndResultWhilePending) {
  weft::Future<int> f;
  EXPECT_THROW_WITH((void)f.result(), weft::InvalidStateError, "not set");
  EXPECT_THROW_WITH((void)f.exception(), weft::InvalidStateError, "not set");
  f.set_result(1);
  EXPECT_THROW_WITH(f.set_result(2), weft::InvalidStateError, "already done");
  EXPECT_EQ(f.result(), 1);
  weft::Future<void> v;
  EXPECT_THROW_WITH(v.set_exception(nullptr), weft::ValueError, "null");
  weft::Task<int> empty;
  EXPECT_THROW_WITH((void)empty.done(), weft::InvalidStateError, "empty");
}

TEST(BadInput, NegativeHugeAndNanDelays) {
  weft::EventLoop loop;
  int ran = 0;
  loop.call_later(-5s, [&] { ++ran; });
  loop.call_later(weft::Duration::min(), [&] { ++ran; });
  weft::TimerHandle never = loop.call_later(weft::Duration::max(), [&] { ran += 100; });
  EXPECT_EQ(never.when(), weft::TimePoint::max());  // saturated, not overflowed
  loop.call_later(5ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(ran, 2);
  never.cancel();
  EXPECT_THROW_WITH(weft::TimerHandle().when(), weft::InvalidStateError, "empty");
}

WEFT_TEST(BadInput, SleepWithANanDelay) {
  bool raised = false;
  try {
    co_await weft::sleep(std::chrono::duration<double, std::milli>(std::nan("")));
  } catch (const weft::ValueError& e) {
    raised = std::string(e.what()).find("NaN") != std::string::npos;
  }
  EXPECT_TRUE(raised);
  co_await weft::sleep(-1h);  // negative: like 0
}

TEST(BadInput, WorkersBeyondTheCap) {
  EXPECT_THROW_WITH(weft::Runtime({.workers = 1025}), weft::ValueError, "1024");
  EXPECT_THROW_WITH(weft::run(one(), {.workers = 100000}), weft::ValueError, "1024");
}

/// Sets an environment variable for the scope and restores the previous
/// value. Only for the tests of reading the environment itself
/// (detail::resolve_loop_options, WEFT_WORKERS): tests steer the library
/// through options.
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~EnvGuard() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(BadInput, WeftWorkersGarbage) {
  for (const char* bad : {"abc", "4x", "-3", "0", "2000", "1.5", " 2", "+2"}) {
    EnvGuard env("WEFT_WORKERS", bad);
    SCOPED_TRACE(bad);
    EXPECT_THROW_WITH(weft::Runtime({.workers = 0}), weft::ValueError, "WEFT_WORKERS");
  }
  EnvGuard env("WEFT_WORKERS", "3");
  weft::Runtime rt({.workers = 0});
  EXPECT_EQ(rt.workers(), 3u);
}

TEST(LoopOptionsEnvironment, AnEmptySwitchTakesTheEnvironmentAndASetOneWins) {
  EnvGuard uring("WEFT_IO_URING", "0");
  EnvGuard multishot("WEFT_IO_URING_MULTISHOT", "0");
  EnvGuard watcher("WEFT_CHILD_WATCHER", "sigchld");
  EnvGuard debug("WEFT_DEBUG", "1");
  weft::LoopOptions from_env = weft::detail::resolve_loop_options({});
  EXPECT_EQ(from_env.io_uring, false);
  EXPECT_EQ(from_env.io_uring_multishot, false);
  EXPECT_EQ(from_env.child_watcher, weft::ChildWatcher::sigchld);
  EXPECT_EQ(from_env.debug, true);
  weft::LoopOptions set =
      weft::detail::resolve_loop_options({.debug = false,
                                          .io_uring = true,
                                          .io_uring_multishot = true,
                                          .child_watcher = weft::ChildWatcher::pidfd});
  EXPECT_EQ(set.io_uring, true);
  EXPECT_EQ(set.io_uring_multishot, true);
  EXPECT_EQ(set.child_watcher, weft::ChildWatcher::pidfd);
  EXPECT_EQ(set.debug, false);
}

TEST(LoopOptionsEnvironment, WithoutTheEnvironmentTheBuiltInDefaults) {
  EnvGuard uring("WEFT_IO_URING", "");
  EnvGuard multishot("WEFT_IO_URING_MULTISHOT", "");
  EnvGuard watcher("WEFT_CHILD_WATCHER", "");
  EnvGuard debug("WEFT_DEBUG", "0");
  weft::LoopOptions d = weft::detail::resolve_loop_options({});
  EXPECT_EQ(d.io_uring, true);
  EXPECT_EQ(d.io_uring_multishot, true);
  EXPECT_EQ(d.child_watcher, weft::ChildWatcher::pidfd);
  EXPECT_EQ(d.debug, false);
  weft::EventLoop loop({.debug = true});
  EXPECT_TRUE(loop.get_debug());
  EXPECT_EQ(loop.options().io_uring, true);
}

TEST(BadInput, LocalQueueCapacityNotAPowerOfTwo) {
  for (std::uint32_t bad : {0u, 1u, 3u, 100u}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW_WITH(weft::Runtime({.workers = 2, .local_queue_capacity = bad}), weft::ValueError,
                      "power of two");
  }
  EXPECT_THROW_WITH(weft::Runtime({.workers = 1, .global_queue_interval = 0}), weft::ValueError,
                    "global_queue_interval");
}

TEST(BadInput, CreateTaskAndGetRunningLoopOutsideALoop) {
  EXPECT_THROW_WITH(weft::create_task(one()), weft::RuntimeError, "no running event loop");
  EXPECT_THROW_WITH(weft::get_running_loop(), weft::RuntimeError, "no running event loop");
}

TEST(BadInput, FdAndContextVarMisuse) {
  weft::EventLoop loop;
  EXPECT_THROW_WITH(loop.add_reader(-1, [] {}), weft::ValueError, "invalid fd");
  EXPECT_FALSE(loop.remove_reader(-1));
  weft::ContextVar<int> a("a");
  weft::ContextVar<int> b("b", 0);
  EXPECT_THROW_WITH((void)a.get(), weft::ValueError, "no value");
  auto token = a.set(1);
  EXPECT_THROW_WITH(b.reset(token), weft::ValueError, "different ContextVar");
  a.reset(token);
  EXPECT_THROW_WITH(a.reset(token), weft::RuntimeError, "already been used");
}

}  // namespace

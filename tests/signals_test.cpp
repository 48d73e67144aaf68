// Signals on the event loop and SIGINT during weft::run() (issue 3; RUN-06).
//
// Signals are process-wide, so every test here restores what it changes. The
// SIGINT tests run weft::run() in a child process (this test binary started
// again with posix_spawn, running only RunInterruptChild.Main; not fork(),
// which ThreadSanitizer does not support in a process that has threads), so
// the test binary's own SIGINT disposition is never touched.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

#include "weft_test.hpp"

namespace {

using namespace std::chrono_literals;

bool disposition_is(int sig, void (*handler)(int)) {
  struct sigaction act {};
  ::sigaction(sig, nullptr, &act);
  return !(act.sa_flags & SA_SIGINFO) && act.sa_handler == handler;
}

// Hang guard only: fails `f` with TimeoutError if nothing completed it in time.
template <class T>
weft::TimerHandle guard(weft::Future<T> f, std::chrono::seconds limit = 30s) {
  return weft::get_running_loop().call_later(limit, [f]() mutable {
    try {
      f.set_exception(std::make_exception_ptr(weft::TimeoutError()));
    } catch (const weft::InvalidStateError&) {
    }
  });
}

class Signals : public weft::testing::WorkersTest {};

// The handler runs as a callback of the loop that registered it, once per
// delivery, whichever thread the kernel picked for the signal.
WEFT_TEST_P(Signals, HandlerRunsOnRegisteringLoop) {
  weft::EventLoop& loop = weft::get_running_loop();
  // Registered once, here, on `loop`'s own thread: after the first round this
  // task may run on another worker, and a registration from there is queued
  // to `loop`, so a signal sent right after it could still meet the previous
  // round's callback. Each round hands the callback a fresh future instead.
  struct Round {
    std::mutex mu;
    std::optional<weft::Future<bool>> ran;
  };
  auto round = std::make_shared<Round>();
  weft::add_signal_handler(loop, SIGUSR1, [round, &loop] {
    std::lock_guard lock(round->mu);
    if (round->ran && !round->ran->done())
      round->ran->set_result(weft::detail::current_loop() == &loop);
  });
  const int rounds = 20;
  for (int i = 0; i < rounds; ++i) {
    weft::Future<bool> ran;
    {
      std::lock_guard lock(round->mu);
      round->ran = ran;
    }
    ::kill(::getpid(), SIGUSR1);
    weft::TimerHandle timer = guard(ran);
    bool on_loop = co_await ran;
    timer.cancel();
    CO_ASSERT_TRUE(on_loop);
  }
  CO_ASSERT_TRUE(weft::remove_signal_handler(loop, SIGUSR1));
  // With several workers this task may have moved off `loop`: a removal from
  // another thread is queued to the loop and takes effect asynchronously.
  for (int i = 0; i < 2000 && !disposition_is(SIGUSR1, SIG_DFL); ++i) co_await weft::sleep(1ms);
  CO_ASSERT_TRUE(disposition_is(SIGUSR1, SIG_DFL));
}
INSTANTIATE_TEST_SUITE_P(Workers, Signals, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);

WEFT_TEST(SignalHandlers, RemoveRestoresPreviousDisposition) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction saved {};
  ::sigaction(SIGUSR2, &ignore, &saved);
  weft::EventLoop& loop = weft::get_running_loop();
  int calls = 0;
  weft::add_signal_handler(loop, SIGUSR2, [&calls] { ++calls; });
  CO_ASSERT_TRUE(!disposition_is(SIGUSR2, SIG_IGN));
  CO_ASSERT_TRUE(weft::remove_signal_handler(loop, SIGUSR2));
  CO_ASSERT_TRUE(!weft::remove_signal_handler(loop, SIGUSR2));  // nothing left to remove
  CO_ASSERT_TRUE(disposition_is(SIGUSR2, SIG_IGN));
  ::kill(::getpid(), SIGUSR2);  // ignored again: must neither run the handler nor kill us
  co_await weft::sleep(20ms);
  CO_ASSERT_EQ(calls, 0);
  ::sigaction(SIGUSR2, &saved, nullptr);
}

WEFT_TEST(SignalHandlers, ReRegisteringReplacesTheCallback) {
  weft::EventLoop& loop = weft::get_running_loop();
  weft::Future<int> which;
  weft::add_signal_handler(loop, SIGUSR1, [which]() mutable { which.set_result(1); });
  weft::add_signal_handler(loop, SIGUSR1, [which]() mutable { which.set_result(2); });
  ::kill(::getpid(), SIGUSR1);
  weft::TimerHandle timer = guard(which);
  int got = co_await which;
  timer.cancel();
  CO_ASSERT_EQ(got, 2);
  CO_ASSERT_TRUE(weft::remove_signal_handler(loop, SIGUSR1));
}

WEFT_TEST(SignalHandlers, ExceptionInHandlerGoesToExceptionHandler) {
  weft::EventLoop& loop = weft::get_running_loop();
  weft::Future<std::string> reported;
  loop.set_exception_handler(
      [reported](weft::EventLoop&, const weft::ExceptionContext& ctx) mutable {
        if (!reported.done())
          reported.set_result(ctx.message + ": " + weft::describe_exception(ctx.exception));
      });
  weft::add_signal_handler(loop, SIGUSR1, [] { throw weft::ValueError("boom"); });
  ::kill(::getpid(), SIGUSR1);
  weft::TimerHandle timer = guard(reported);
  std::string message = co_await reported;
  timer.cancel();
  CO_ASSERT_TRUE(message.find("signal") != std::string::npos);
  CO_ASSERT_TRUE(message.find("boom") != std::string::npos);
  weft::remove_signal_handler(loop, SIGUSR1);
  loop.set_exception_handler({});
}

TEST(SignalHandlers, InvalidSignalsAreRejected) {
  weft::EventLoop loop;
  EXPECT_THROW(weft::add_signal_handler(loop, 0, [] {}), weft::ValueError);
  EXPECT_THROW(weft::add_signal_handler(loop, _NSIG, [] {}), weft::ValueError);
  EXPECT_THROW(weft::add_signal_handler(loop, SIGKILL, [] {}), weft::RuntimeError);
  EXPECT_THROW(weft::add_signal_handler(loop, SIGSTOP, [] {}), weft::RuntimeError);
  EXPECT_THROW(weft::remove_signal_handler(loop, -1), weft::ValueError);
  EXPECT_FALSE(weft::remove_signal_handler(loop, SIGUSR1));
}

// A standalone loop on its own thread: the signal sent to the process lands
// on a thread that does not block it (this one) and is forwarded there.
TEST(SignalHandlers, StandaloneLoopOnAnotherThread) {
  std::atomic<bool> ready{false};
  std::atomic<std::thread::id> handled_on{};
  std::thread::id loop_thread_id;
  std::thread loop_thread([&] {
    weft::EventLoop loop;
    loop_thread_id = std::this_thread::get_id();
    weft::Future<void> got = loop.create_future<void>();
    weft::add_signal_handler(loop, SIGUSR2, [&, got]() mutable {
      handled_on = std::this_thread::get_id();
      if (!got.done()) got.set_result();
    });
    ready = true;
    loop.run_until_complete(got);
    EXPECT_TRUE(weft::remove_signal_handler(loop, SIGUSR2));
  });
  while (!ready) std::this_thread::yield();
  ::kill(::getpid(), SIGUSR2);
  loop_thread.join();
  EXPECT_EQ(handled_on.load(), loop_thread_id);
  EXPECT_TRUE(disposition_is(SIGUSR2, SIG_DFL));
}

// Registering a signal on a second loop moves it there (the last one wins).
TEST(SignalHandlers, SecondLoopTakesTheSignalOver) {
  std::atomic<int> first_calls{0};
  std::atomic<bool> first_ready{false}, stop_first{false};
  std::thread first([&] {
    weft::EventLoop loop;
    weft::add_signal_handler(loop, SIGUSR1, [&] { ++first_calls; });
    first_ready = true;
    loop.run_until_complete([](std::atomic<bool>* stop) -> weft::Coro<void> {
      while (!stop->load()) co_await weft::sleep(1ms);
    }(&stop_first));
    weft::remove_signal_handler(loop, SIGUSR1);  // already moved: false
  });
  while (!first_ready) std::this_thread::yield();
  {
    weft::EventLoop second;
    weft::Future<void> got = second.create_future<void>();
    weft::add_signal_handler(second, SIGUSR1, [got]() mutable {
      if (!got.done()) got.set_result();
    });
    ::kill(::getpid(), SIGUSR1);
    second.run_until_complete(got);
    EXPECT_TRUE(weft::remove_signal_handler(second, SIGUSR1));
  }
  stop_first = true;
  first.join();
  EXPECT_EQ(first_calls.load(), 0);
  EXPECT_TRUE(disposition_is(SIGUSR1, SIG_DFL));
}

// --------------------------------------------------------------- RUN-06

enum ChildExit {
  kKeyboardInterrupt = 10,
  kCancelledError = 11,
  kReturned = 12,
  kOtherError = 13,
};

// The child tells the parent on this fd when it is ready for the next SIGINT.
constexpr int kReadyFd = 3;

void tell_parent() {
  char c = 'r';
  if (::write(kReadyFd, &c, 1) != 1) std::_Exit(kOtherError);
}

// Waits until run() has armed SIGINT, then tells the parent.
weft::Coro<void> armed() {
  while (disposition_is(SIGINT, SIG_DFL)) co_await weft::sleep(1ms);
  tell_parent();
}

weft::Coro<int> sigint_cancels_main() {
  co_await armed();
  co_await weft::sleep(60s);  // cancelled by SIGINT
  co_return 0;
}

weft::Coro<int> main_handles_the_cancellation() {
  co_await armed();
  try {
    co_await weft::sleep(60s);
  } catch (const weft::CancelledError&) {
    co_return 7;
  }
  co_return 0;
}

weft::Coro<int> main_already_cancelled() {
  weft::current_task().cancel("another reason");
  try {
    co_await weft::sleep(0s);
  } catch (const weft::CancelledError&) {
    // Swallowed without uncancel(): cancelling() stays 1.
  }
  co_await armed();
  co_await weft::sleep(60s);
  co_return 0;
}

weft::Coro<int> second_sigint() {
  co_await armed();
  try {
    co_await weft::sleep(60s);
  } catch (const weft::CancelledError&) {
    tell_parent();
  }
  co_await weft::sleep(60s);  // the second SIGINT ends the process here
  co_return 0;
}

const std::map<std::string, std::function<weft::Coro<int>()>>& scenarios() {
  static const std::map<std::string, std::function<weft::Coro<int>()>> all = {
      {"sigint_cancels_main", sigint_cancels_main},
      {"main_handles_the_cancellation", main_handles_the_cancellation},
      {"main_already_cancelled", main_already_cancelled},
      {"second_sigint", second_sigint},
  };
  return all;
}

// The child side: runs only when started by run_child() below.
TEST(RunInterruptChild, Main) {
  const char* name = std::getenv("WEFT_SIGINT_SCENARIO");
  if (!name) GTEST_SKIP() << "runs only as the child of a RunInterrupt test";
  int code = kOtherError;
  try {
    int value = weft::run(scenarios().at(name)(), {.workers = 2});
    code = value == 7 ? kReturned : kOtherError;
  } catch (const weft::KeyboardInterrupt&) {
    code = kKeyboardInterrupt;
  } catch (const weft::CancelledError&) {
    code = kCancelledError;
  } catch (...) {
  }
  std::_Exit(code);
}

// Starts this binary again running `scenario`, sends it one SIGINT per
// readiness report (up to `sigints`), and returns its wait status.
int run_child(const std::string& scenario, int sigints) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], kReadyFd);
  std::string filter = "--gtest_filter=RunInterruptChild.Main";
  std::string exe = "/proc/self/exe";
  std::vector<char*> argv = {exe.data(), filter.data(), nullptr};
  std::string selector = "WEFT_SIGINT_SCENARIO=" + scenario;
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "WEFT_SIGINT_SCENARIO=", 21) != 0) envp.push_back(*e);
  envp.push_back(selector.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return -1;
  }
  for (int i = 0; i < sigints; ++i) {
    char c;
    if (::read(pipe_fds[0], &c, 1) != 1) break;  // the child is ready for the next SIGINT
    ::kill(pid, SIGINT);
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(RunInterrupt, Run06SigintCancelsMainAndRunRaisesKeyboardInterrupt) {
  int status = run_child("sigint_cancels_main", 1);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kKeyboardInterrupt);
}

TEST(RunInterrupt, Run06MainThatHandlesTheCancellationReturnsNormally) {
  int status = run_child("main_handles_the_cancellation", 1);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kReturned);
}

TEST(RunInterrupt, Run06AlreadyCancelledMainSurfacesCancelledError) {
  int status = run_child("main_already_cancelled", 1);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kCancelledError);
}

TEST(RunInterrupt, Run06SecondSigintEndsTheProcess) {
  int status = run_child("second_sigint", 2);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

bool sigint_blocked_here() {
  sigset_t current;
  ::pthread_sigmask(SIG_BLOCK, nullptr, &current);
  return sigismember(&current, SIGINT) == 1;
}

// SIGINT is read only through loop 0's signalfd: run()'s thread and every
// worker block it for run()'s duration, so no thread runs a handler for it
// (a signal taken by a handler on a thread that is not looking is how a
// SIGINT got lost before).
TEST(RunInterrupt, Run06SigintIsBlockedOnEveryRuntimeThreadDuringRun) {
  ASSERT_FALSE(sigint_blocked_here());
  int blocked_on_workers = weft::run(
      []() -> weft::Coro<int> {
        int blocked = 0;
        for (int i = 0; i < 2; ++i) {
          auto on_worker =
              weft::create_task([]() -> weft::Coro<bool> { co_return sigint_blocked_here(); }());
          blocked += (co_await on_worker) ? 1 : 0;
        }
        co_return blocked + (sigint_blocked_here() ? 1 : 0);
      }(),
      {.workers = 2});
  EXPECT_EQ(blocked_on_workers, 3);
  EXPECT_FALSE(sigint_blocked_here());
}

// RunOptions::handle_sigint = false: run() leaves SIGINT as it found it
// (no block on any thread, no handler), so its default action stays.
TEST(RunInterrupt, WithoutHandleSigintRunLeavesSigintAlone) {
  int blocked = weft::run(
      []() -> weft::Coro<int> {
        auto on_worker =
            weft::create_task([]() -> weft::Coro<bool> { co_return sigint_blocked_here(); }());
        bool worker_blocked = co_await on_worker;
        co_return (worker_blocked ? 1 : 0) + (sigint_blocked_here() ? 1 : 0);
      }(),
      {.workers = 2, .handle_sigint = false});
  EXPECT_EQ(blocked, 0);
  EXPECT_TRUE(disposition_is(SIGINT, SIG_DFL));
}

TEST(RunInterrupt, RunRestoresSigintAfterwards) {
  EXPECT_EQ(weft::run(
                []() -> weft::Coro<int> {
                  co_await weft::sleep(0s);
                  co_return 1;
                }(),
                {.workers = 1}),
            1);
  EXPECT_TRUE(disposition_is(SIGINT, SIG_DFL));
  EXPECT_FALSE(sigint_blocked_here());
}

}  // namespace

// Conformance tests for coroutines and scheduling points, CORO-01..05 of
// docs/asyncio-behaviours.md (issue 2), plus the rest of docs/api.md
// (coroutines, tasks, futures): awaiting a moved-from Coro, the never-awaited warning,
// ContextVar copy-on-create, current_task()/all_tasks(), and foreign (any
// standard C++) awaitables.
//
// Python-only items with no runtime test (ruled out at compile time):
// CORO-05 create_task(123) / ensure_future('ok') (TypeError: create_task only
// accepts a Coro<T>); ensure_future(task_or_future) returning the same object
// and ensure_future(fut, loop=other) have no weft counterpart (a Task already
// is a Future, there is no ensure_future).
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;
using Log = std::vector<std::string>;

namespace {

// ---------------------------------------------------------------------------------- CORO-01

weft::Coro<int> quick(Log* log) {
  log->push_back("quick");
  co_return 1000;
}
weft::Coro<void> other(Log* log) {
  log->push_back("other");
  co_return;
}

WEFT_TEST(Coro, Coro01AwaitingACoroutineRunsItInlineWithoutAnIteration) {
  Log log;
  auto t = weft::create_task(other(&log));
  int v = 42 + co_await quick(&log);
  log.push_back("after quick");
  EXPECT_EQ(v, 1042);
  co_await t;
  EXPECT_EQ(log, (Log{"quick", "after quick", "other"}));
}

// ---------------------------------------------------------------------------------- CORO-02

weft::Coro<int> body_logs(Log* log) {
  log->push_back("body");
  co_return 1;
}

WEFT_TEST(Coro, Coro02CreateTaskIsLazy) {
  Log log;
  auto t = weft::create_task(body_logs(&log));
  EXPECT_FALSE(t.done());
  EXPECT_TRUE(log.empty());
  log.push_back("creator yields");
  co_await weft::sleep(0ms);
  EXPECT_TRUE(t.done());
  EXPECT_EQ(log, (Log{"creator yields", "body"}));
}

// ---------------------------------------------------------------------------------- CORO-03

weft::Coro<weft::Future<int>> returns_a_future(weft::Future<int> f) { co_return f; }

WEFT_TEST(Coro, Coro03ACoroutineReturningAFutureGivesTheFutureItself) {
  weft::Future<int> f;
  auto t = weft::create_task(returns_a_future(f));
  weft::Future<int> got = co_await t;
  EXPECT_TRUE(got == f);
  EXPECT_FALSE(got.done());  // the future's value was not awaited
}

// ---------------------------------------------------------------------------------- CORO-04

weft::Coro<int> seven() { co_return 7; }

WEFT_TEST(Coro, Coro04AwaitingACoroutineTwiceIsARuntimeError) {
  weft::Coro<int> c = seven();
  EXPECT_EQ(co_await std::move(c), 7);
  bool raised = false;
  try {
    (void)co_await std::move(c);
  } catch (const weft::RuntimeError&) {
    // GCC moves an rvalue Coro into the awaiting frame, so the second await
    // finds it moved-from; either way: RuntimeError, never a second run.
    raised = true;
  }
  EXPECT_TRUE(raised);
}

WEFT_TEST(Coro, Coro04ACoroutineWrappedInATaskCannotBeAwaitedAgain) {
  weft::Coro<int> c = seven();
  auto t = weft::create_task(std::move(c));
  bool raised = false;
  try {
    (void)co_await std::move(c);  // NOLINT(bugprone-use-after-move): the point of the test
  } catch (const weft::RuntimeError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(co_await t, 7);
}

struct SelfSlot {
  weft::Task<void> self;
  bool raised = false;
  std::string message;
};

weft::Coro<void> awaits_itself(std::shared_ptr<SelfSlot> slot) {
  co_await weft::sleep(0ms);  // the creator has stored the handle by now
  try {
    co_await slot->self;
  } catch (const weft::RuntimeError& e) {
    slot->raised = true;
    slot->message = e.what();
  }
}

WEFT_TEST(Coro, Coro04ATaskAwaitingItselfIsARuntimeError) {
  auto slot = std::make_shared<SelfSlot>();
  slot->self = weft::create_task(awaits_itself(slot));
  co_await weft::Task<void>(slot->self);
  EXPECT_TRUE(slot->raised);
  EXPECT_NE(slot->message.find("cannot await on itself"), std::string::npos);
  slot->self = {};  // break the cycle
}

// ------------------------------------------------------------------ moved-from / never awaited

WEFT_TEST(Coro, AwaitingAMovedFromCoroIsARuntimeError) {
  weft::Coro<int> a = seven();
  weft::Coro<int> b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
  bool raised = false;
  try {
    (void)co_await std::move(a);  // NOLINT(bugprone-use-after-move)
  } catch (const weft::RuntimeError& e) {
    raised = true;
    EXPECT_NE(std::string(e.what()).find("moved-from"), std::string::npos);
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(co_await std::move(b), 7);
}

weft::Coro<int> never_awaited_function() { co_return 1; }

weft::Coro<void> drop_a_coro() {
  { weft::Coro<int> dropped = never_awaited_function(); }
  co_return;
}

TEST(Coro, NeverAwaitedCoroLogsInDebugMode) {
  weft::EventLoop loop;
  loop.set_debug(true);
  ::testing::internal::CaptureStderr();
  loop.run_until_complete(drop_a_coro());
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("was never awaited"), std::string::npos) << err;
  EXPECT_NE(err.find("never_awaited_function"), std::string::npos) << err;
}

TEST(Coro, NeverAwaitedCoroIsSilentOutsideDebugMode) {
  weft::EventLoop loop;
  loop.set_debug(false);
  ::testing::internal::CaptureStderr();
  loop.run_until_complete(drop_a_coro());
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("was never awaited"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------------- ContextVar

weft::ContextVar<std::string> g_request("request", "none");

weft::Coro<std::string> child_sets(std::string value) {
  std::string seen = g_request.get();
  g_request.set(std::move(value));
  co_await weft::sleep(0ms);
  co_return seen + "->" + g_request.get();
}

class CoroW : public weft::testing::WorkersTest {};

WEFT_TEST_P(CoroW, ContextVarIsCopiedIntoEachTaskAndSetStaysLocal) {
  auto token = g_request.set("parent");
  auto a = weft::create_task(child_sets("a"));
  auto b = weft::create_task(child_sets("b"));
  g_request.set("parent-later");  // after creation: the children keep their copy
  EXPECT_EQ(co_await a, "parent->a");
  EXPECT_EQ(co_await b, "parent->b");
  EXPECT_EQ(g_request.get(), "parent-later");  // the children's set is invisible here
  g_request.reset(token);
  EXPECT_EQ(g_request.get(), "none");
}

// ------------------------------------------------------------------ current_task / all_tasks

// Identities, not TaskRefs: a task whose result holds a TaskRef to itself would
// keep itself alive (a reference cycle; weft has no garbage collector).
using Identity = const weft::detail::TaskCore*;

weft::Coro<std::pair<Identity, Identity>> reports_itself() {
  co_await weft::sleep(0ms);
  Identity first = weft::detail::TaskAccess::core(weft::current_task());
  co_await weft::sleep(1ms);
  co_return std::pair{first, Identity{weft::detail::TaskAccess::core(weft::current_task())}};
}

WEFT_TEST_P(CoroW, CurrentTaskIsTheRunningTaskEvenWhenInterleaved) {
  std::vector<weft::Task<std::pair<Identity, Identity>>> tasks;
  for (int i = 0; i < 8; ++i) tasks.push_back(weft::create_task(reports_itself()));
  for (auto& t : tasks) {
    auto [first, second] = co_await t;
    EXPECT_EQ(first, &weft::detail::TaskAccess::core(t));
    EXPECT_EQ(second, &weft::detail::TaskAccess::core(t));
  }
  weft::TaskRef main = weft::current_task();
  EXPECT_TRUE(static_cast<bool>(main));
  EXPECT_FALSE(main.done());
}

TEST(Coro, CurrentTaskIsEmptyOutsideATask) {
  EXPECT_FALSE(static_cast<bool>(weft::current_task()));
  EXPECT_THROW(weft::all_tasks(), weft::RuntimeError);
}

weft::Coro<void> waits_on(weft::Future<void> f) { co_await f; }

WEFT_TEST_P(CoroW, AllTasksListsEveryPendingTask) {
  weft::Future<void> gate;
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < 5; ++i)
    tasks.push_back(weft::create_task(waits_on(gate), {.name = "w" + std::to_string(i)}));
  co_await weft::sleep(1ms);
  std::vector<weft::TaskRef> all = weft::all_tasks();
  int found = 0;
  for (auto& t : tasks)
    for (auto& r : all)
      if (r == weft::TaskRef(t)) ++found;
  EXPECT_EQ(found, 5);
  // main itself is pending too.
  bool has_main = false;
  for (auto& r : all) has_main |= r == weft::current_task();
  EXPECT_TRUE(has_main);
  gate.set_result();
  for (auto& t : tasks) co_await t;
  for (auto& r : weft::all_tasks())
    for (auto& t : tasks) EXPECT_FALSE(r == weft::TaskRef(t));  // done tasks are gone
}

// ------------------------------------------------------------------------ foreign awaitables

/// A minimal standard C++ awaitable that knows nothing of weft: it resumes
/// the awaiting coroutine from a new std::thread with a value (or an error).
/// The thread lands in *thread for the test to join (TSan cannot see the
/// happens-before from a detached thread's wake-up to the runtime's teardown,
/// which moodycamel orders with fences). It has a constructor on purpose:
/// GCC 12 destroys an *aggregate* prvalue co_await operand twice (a compiler
/// bug, reproduced without weft), which double-frees a std::string member.
template <class T>
struct ThreadResumer {
  ThreadResumer(T v, bool f, std::thread* t, std::thread::id* r = nullptr)
      : value(std::move(v)), fail(f), thread(t), resumer(r) {}
  T value;
  bool fail = false;
  std::thread* thread;
  std::thread::id* resumer = nullptr;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    *thread = std::thread([h, r = resumer] {
      if (r) *r = std::this_thread::get_id();
      h.resume();
    });
  }
  T await_resume() {
    if (fail) throw std::runtime_error("foreign failure");
    return value;
  }
};

/// An awaitable reached through operator co_await, returning a reference.
struct Holder {
  int stored = 5;
  struct Awaiter {
    Holder* h;
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    int& await_resume() const noexcept { return h->stored; }
  };
  Awaiter operator co_await() { return Awaiter{this}; }
};

WEFT_TEST_P(CoroW, ForeignAwaitableResumesTheTaskOnAWorkerNotTheForeignThread) {
  for (int i = 0; i < 20; ++i) {
    std::thread::id foreign;
    std::thread th;
    int v = co_await ThreadResumer<int>(i, false, &th, &foreign);
    th.join();
    EXPECT_EQ(v, i);
    EXPECT_NE(std::this_thread::get_id(), foreign);
    EXPECT_FALSE(weft::current_task().done());  // still inside the task, on a worker
  }
}

WEFT_TEST_P(CoroW, ForeignAwaitableErrorsAndReferencesPassThrough) {
  bool raised = false;
  try {
    std::thread th;
    struct Join {
      std::thread* t;
      ~Join() { t->join(); }
    } join{&th};
    (void)co_await ThreadResumer<int>(0, true, &th);
  } catch (const std::runtime_error& e) {
    raised = std::string(e.what()) == "foreign failure";
  }
  EXPECT_TRUE(raised);
  Holder h;
  int& ref = co_await h;
  EXPECT_EQ(&ref, &h.stored);
  std::thread th;
  std::string s = co_await ThreadResumer<std::string>("text", false, &th);
  th.join();
  EXPECT_EQ(s, "text");
}

/// Neither copyable nor movable: it can only be awaited as an lvalue, in place.
struct Pinned {
  Pinned() = default;
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  int resumed = 0;
  std::thread thread;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    if (thread.joinable()) thread.join();
    thread = std::thread([this, h] {
      ++resumed;
      h.resume();
    });
  }
  int await_resume() const noexcept { return resumed; }
};

WEFT_TEST_P(CoroW, NonCopyableLvalueForeignAwaitableIsAwaitedInPlace) {
  Pinned p;
  EXPECT_EQ(co_await p, 1);
  EXPECT_EQ(co_await p, 2);
  p.thread.join();
}

INSTANTIATE_TEST_SUITE_P(Workers, CoroW, weft::testing::kWorkerCounts, weft::testing::worker_name);

}  // namespace

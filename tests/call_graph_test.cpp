// Await chains: capture_call_graph, capture_call_graphs and the pstree-like
// print (call_graph.hpp).
#include <weft/weft.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "weft_test.hpp"

using namespace std::chrono_literals;

namespace {

class CallGraph : public weft::testing::WorkersTest {};
INSTANTIATE_TEST_SUITE_P(Workers, CallGraph, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);

int g_take_line = 0;

weft::Coro<void> take(weft::Lock* lock) {
  g_take_line = __LINE__ + 1;
  co_await lock->acquire();
  lock->release();
}

weft::Coro<void> alice_body(weft::Lock* lock) { co_await take(lock); }

const weft::TaskCallGraph* find(const std::vector<weft::TaskCallGraph>& gs,
                                const std::string& name) {
  auto it = std::find_if(gs.begin(), gs.end(), [&](const auto& g) { return g.name == name; });
  return it == gs.end() ? nullptr : &*it;
}

TEST_P(CallGraph, ShowsALockWaitThroughItsChainOfCoroutines) {
  weft::Runtime rt({.workers = GetParam()});
  rt.block_on([]() -> weft::Coro<void> {
    weft::Lock lock;
    co_await lock.acquire();
    weft::TaskOptions o{.name = "alice"};
    weft::Task<void> alice = weft::create_task(alice_body(&lock), o);
    while (!lock.locked() || weft::capture_call_graph(alice).state != weft::TaskRunState::waiting)
      co_await weft::sleep(1ms);
    weft::TaskCallGraph g = weft::capture_call_graph(alice);
    EXPECT_EQ(g.name, "alice");
    EXPECT_EQ(g.awaits.kind, weft::AwaitKind::lock);
    EXPECT_EQ(g.awaits.object, &lock);
    EXPECT_TRUE(g.awaited_by.empty());
    EXPECT_FALSE(g.age.has_value());  // recorded only with RunOptions::introspect
    CO_ASSERT_EQ(g.call_stack.size(), 2u);
    EXPECT_NE(g.call_stack[0].function.find("alice_body"), std::string::npos);
    EXPECT_NE(g.call_stack[1].function.find("take"), std::string::npos);
    EXPECT_NE(g.call_stack[1].file.find("call_graph_test.cpp"), std::string::npos);
    EXPECT_EQ(g.call_stack[1].line, static_cast<unsigned>(g_take_line));
    lock.release();
    co_await alice;
  }());
}

weft::Coro<void> nap() { co_await weft::sleep(10s); }
weft::Coro<void> parent_body(weft::Task<void>* child) { co_await *child; }

TEST_P(CallGraph, TasksAwaitingTasksFormATree) {
  weft::Runtime rt({.workers = GetParam()});
  rt.block_on([]() -> weft::Coro<void> {
    weft::TaskOptions co{.name = "child"};
    weft::Task<void> child = weft::create_task(nap(), co);
    weft::TaskOptions po{.name = "parent"};
    weft::Task<void> parent = weft::create_task(parent_body(&child), po);
    for (int tries = 0;; ++tries) {
      auto gs = weft::capture_call_graphs();
      const auto* p = find(gs, "parent");
      const auto* c = find(gs, "child");
      if (p && c && p->awaits.kind == weft::AwaitKind::task &&
          c->awaits.kind == weft::AwaitKind::sleep && c->awaits.deadline)
        break;
      if (tries == 2000) {
        ADD_FAILURE() << "parent and child never showed their awaits:\n"
                      << weft::format_call_graph_tree(gs);
        child.cancel();
        parent.cancel();
        co_return;
      }
      co_await weft::sleep(1ms);
    }
    auto gs = weft::capture_call_graphs();
    const auto* p = find(gs, "parent");
    const auto* c = find(gs, "child");
    EXPECT_EQ(p->awaits.task_id, c->id);
    EXPECT_EQ(c->awaited_by, std::vector<std::uint64_t>{p->id});
    EXPECT_EQ(c->awaits.delay, std::chrono::nanoseconds(10s));
    std::string tree = weft::format_call_graph_tree(gs);
    std::size_t at_parent = tree.find("(T) parent");
    std::size_t at_child = tree.find("(T) child");
    EXPECT_NE(at_parent, std::string::npos) << tree;
    EXPECT_GT(at_child, at_parent) << tree;  // nested under the task awaiting it
    EXPECT_NE(tree.find("awaits sleep"), std::string::npos) << tree;
    EXPECT_NE(tree.find("awaits Task"), std::string::npos) << tree;
    child.cancel();
    // Awaited outside EXPECT_TRUE: GCC 12 hangs on a co_await in the macro.
    bool parent_cancelled = co_await weft::testing::raises_cancelled(parent);
    EXPECT_TRUE(parent_cancelled);
  }());
}

TEST_P(CallGraph, CapturedFromAForeignThreadWhileWorkersRun) {
  weft::Runtime rt({.workers = GetParam()});
  weft::Event* event = nullptr;
  std::atomic<bool> waiting{false};
  auto waiter = rt.spawn([](weft::Event** out, std::atomic<bool>* w) -> weft::Coro<void> {
    weft::Event e;
    *out = &e;
    w->store(true);
    co_await e.wait();
  }(&event, &waiting));
  std::vector<weft::TaskCallGraph> gs;
  for (int i = 0; i < 5000; ++i) {
    gs = weft::capture_call_graphs(rt);
    if (waiting.load() && gs.size() == 1 && gs[0].awaits.kind == weft::AwaitKind::event) break;
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(gs.size(), 1u);
  EXPECT_EQ(gs[0].awaits.kind, weft::AwaitKind::event);
  EXPECT_EQ(gs[0].awaits.object, event);
  EXPECT_EQ(gs[0].call_stack.size(), 2u);  // the lambda's coroutine, Event::wait
  weft::Event* e = event;
  rt.loop(0).call_soon_threadsafe([e] { e->set(); });
  rt.block_on([](weft::Task<void> t) -> weft::Coro<void> { co_await t; }(waiter));
}

/// What the introspection endpoint at `path` answers `request` with.
std::string ask(const std::string& path, const std::string& request) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string reply;
  char buf[1024];
  while (ssize_t n = ::read(fd, buf, sizeof buf)) {
    if (n < 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

std::string socket_path() {
  char dir[] = "/tmp/weft_introspect_XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  return std::string(dir) + "/sock";
}

TEST_P(CallGraph, IntrospectionSocketListsTasksAndTrees) {
  std::string path = socket_path();
  weft::RunOptions options{.workers = GetParam()};
  options.introspect = path;
  {
    weft::Runtime rt(options);
    weft::Event* event = nullptr;
    std::atomic<bool> waiting{false};
    weft::TaskOptions o{.name = "waiter"};
    auto waiter = rt.spawn(
        [](weft::Event** out, std::atomic<bool>* w) -> weft::Coro<void> {
          weft::Event e;
          *out = &e;
          w->store(true);
          co_await e.wait();
        }(&event, &waiting),
        o);
    std::string ps;
    for (int i = 0; i < 5000; ++i) {
      ps = ask(path, "ps\n");
      if (waiting.load() && ps.find("\twaiting\t") != std::string::npos &&
          ps.find("s\tEvent 0x") != std::string::npos)
        break;
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(ps.rfind("ID\tNAME\tWORKER\tSTATE\tAGE\tAWAITS\n", 0), 0u) << ps;
    EXPECT_NE(ps.find("\twaiter\t"), std::string::npos) << ps;
    EXPECT_NE(ps.find("\twaiting\t"), std::string::npos) << ps;
    EXPECT_NE(ps.find("s\tEvent 0x"), std::string::npos) << ps;  // AGE, then AWAITS
    // The age is the task's: at least the time since it was spawned here.
    std::this_thread::sleep_for(50ms);
    auto graphs = weft::capture_call_graphs(rt);
    auto it = std::find_if(graphs.begin(), graphs.end(),
                           [](const auto& g) { return g.name == "waiter"; });
    ASSERT_NE(it, graphs.end());
    ASSERT_TRUE(it->age.has_value());
    EXPECT_GE(*it->age, 50ms);
    EXPECT_LT(*it->age, 600s);
    std::string tree = ask(path, "tree\n");
    EXPECT_NE(tree.find("(T) waiter"), std::string::npos) << tree;
    EXPECT_NE(tree.find("awaits Event"), std::string::npos) << tree;
    EXPECT_EQ(ask(path, "nonsense\n").rfind("error: unknown request", 0), 0u);
    weft::Event* e = event;
    rt.loop(0).call_soon_threadsafe([e] { e->set(); });
    rt.block_on([](weft::Task<void> t) -> weft::Coro<void> { co_await t; }(waiter));
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // removed at shutdown
  ::rmdir(path.substr(0, path.rfind('/')).c_str());
}

weft::Coro<void> capture_often(std::atomic<int>* started, std::atomic<int>* failures) {
  started->fetch_add(1);
  // Both start before either captures (on two workers, where there are two).
  while (started->load() < 2) co_await weft::sleep(0s);
  for (int i = 0; i < 50; ++i) {
    try {
      (void)weft::capture_call_graphs();
    } catch (const weft::RuntimeError&) {
      failures->fetch_add(1);
    }
    co_await weft::sleep(0s);
  }
}

TEST_P(CallGraph, CapturesFromSeveralWorkersAtOnceTakeTurns) {
  weft::Runtime rt({.workers = GetParam()});
  rt.block_on([]() -> weft::Coro<void> {
    std::atomic<int> started{0}, failures{0};
    auto a = weft::create_task(capture_often(&started, &failures));
    auto b = weft::create_task(capture_often(&started, &failures));
    auto c = weft::create_task(capture_often(&started, &failures));
    co_await a;
    co_await b;
    co_await c;
    EXPECT_EQ(failures.load(), 0);  // a capture that waited 2 s for a worker throws
  }());
}

/// A coroutine type of the program's own, awaited natively by a Coro and
/// awaiting weft's awaitables inside a task: the await chain cannot walk its
/// frame, and must stop there without reading it.
struct Plain {
  struct promise_type {
    std::coroutine_handle<> caller;
    Plain get_return_object() {
      return Plain{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        return h.promise().caller;
      }
      void await_resume() noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
  using weft_native_awaitable = void;
  explicit Plain(std::coroutine_handle<promise_type> h) : h_(h) {}
  Plain(Plain&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  ~Plain() {
    if (h_) h_.destroy();
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
    h_.promise().caller = caller;
    return h_;
  }
  void await_resume() const noexcept {}

 private:
  std::coroutine_handle<promise_type> h_;
};

Plain plain_wait(weft::Future<void>* f) { co_await *f; }
weft::Coro<void> inner_wait(weft::Future<void>* f) { co_await *f; }
Plain plain_then_coro(weft::Future<void>* f) { co_await inner_wait(f); }
weft::Coro<void> outer_plain(weft::Future<void>* f) { co_await plain_wait(f); }
weft::Coro<void> outer_plain_coro(weft::Future<void>* f) { co_await plain_then_coro(f); }

TEST_P(CallGraph, AFrameOfAnotherCoroutineTypeEndsTheChain) {
  weft::Runtime rt({.workers = GetParam()});
  rt.block_on([]() -> weft::Coro<void> {
    weft::Future<void> f;
    weft::Task<void> a = weft::create_task(outer_plain(&f));
    weft::Task<void> b = weft::create_task(outer_plain_coro(&f));
    auto both_wait = [&] {
      return weft::capture_call_graph(a).state == weft::TaskRunState::waiting &&
             weft::capture_call_graph(b).state == weft::TaskRunState::waiting;
    };
    while (!both_wait()) co_await weft::sleep(1ms);
    // Suspended in plain_wait's frame: only the root, awaiting something.
    weft::TaskCallGraph ga = weft::capture_call_graph(a);
    CO_ASSERT_EQ(ga.call_stack.size(), 1u);
    EXPECT_NE(ga.call_stack[0].function.find("outer_plain"), std::string::npos);
    EXPECT_EQ(ga.awaits.kind, weft::AwaitKind::other);
    // Suspended in inner_wait (a Coro), awaited by plain_then_coro: the
    // chain goes from inner_wait straight to the root.
    weft::TaskCallGraph gb = weft::capture_call_graph(b);
    CO_ASSERT_EQ(gb.call_stack.size(), 2u);
    EXPECT_NE(gb.call_stack[0].function.find("outer_plain_coro"), std::string::npos);
    EXPECT_NE(gb.call_stack[1].function.find("inner_wait"), std::string::npos);
    EXPECT_EQ(gb.awaits.kind, weft::AwaitKind::future);
    f.set_result();
    co_await a;
    co_await b;
  }());
}

TEST(Introspect, APathThatIsNotASocketIsRefused) {
  std::string path = socket_path();
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  weft::RunOptions options{.workers = 1};
  options.introspect = path;
  EXPECT_THROW(weft::Runtime rt(options), weft::ValueError);
  options.introspect = std::string(200, 'x');
  EXPECT_THROW(weft::Runtime rt(options), weft::ValueError);
  ::unlink(path.c_str());
  ::rmdir(path.substr(0, path.rfind('/')).c_str());
}

TEST(CallGraphOutside, NeedsARunningLoop) {
  EXPECT_THROW(weft::capture_call_graphs(), weft::RuntimeError);
}

}  // namespace

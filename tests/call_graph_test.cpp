// Await chains: capture_call_graph, capture_call_graphs and the pstree-like
// print (call_graph.hpp).
#include <weft/weft.hpp>

#include <algorithm>
#include <string>
#include <thread>

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
    for (;;) {
      auto gs = weft::capture_call_graphs();
      const auto* p = find(gs, "parent");
      const auto* c = find(gs, "child");
      if (p && c && p->awaits.kind == weft::AwaitKind::task &&
          c->awaits.kind == weft::AwaitKind::sleep && c->awaits.deadline)
        break;
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
    EXPECT_TRUE(co_await weft::testing::raises_cancelled(parent));
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

TEST(CallGraphOutside, NeedsARunningLoop) {
  EXPECT_THROW(weft::capture_call_graphs(), weft::RuntimeError);
}

}  // namespace

// Await chains: capture_call_graph and print_call_graph (call_graph.hpp).
#include <weft/call_graph.hpp>
#include <weft/coro.hpp>
#include <weft/runtime.hpp>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "loop_impl.hpp"
#include "scheduler.hpp"
#include "task_registry.hpp"

namespace weft {

const char* to_string(AwaitKind kind) noexcept {
  switch (kind) {
    case AwaitKind::none:
      return "nothing";
    case AwaitKind::coroutine:
      return "coroutine";
    case AwaitKind::future:
      return "Future";
    case AwaitKind::task:
      return "Task";
    case AwaitKind::sleep:
      return "sleep";
    case AwaitKind::lock:
      return "Lock";
    case AwaitKind::semaphore:
      return "Semaphore";
    case AwaitKind::condition:
      return "Condition";
    case AwaitKind::event:
      return "Event";
    case AwaitKind::queue_get:
      return "Queue.get";
    case AwaitKind::queue_put:
      return "Queue.put";
    case AwaitKind::other:
      return "awaitable";
  }
  return "?";
}

const char* to_string(TaskRunState state) noexcept {
  switch (state) {
    case TaskRunState::waiting:
      return "waiting";
    case TaskRunState::ready:
      return "ready";
    case TaskRunState::running:
      return "running";
    case TaskRunState::done:
      return "done";
  }
  return "?";
}

namespace detail {
namespace {

constexpr auto kPauseTimeout = std::chrono::seconds(2);
}  // namespace

struct CaptureState {
  std::mutex mu;
  std::condition_variable cv;
  unsigned arrived = 0;
  bool released = false;
};

namespace {

/// Every worker of `scheduler` but the calling one, held in a callback of
/// its loop (between two steps) for the object's life.
///
/// Captures of one runtime take turns (Scheduler::capture_current). A worker
/// whose task starts a capture while another is under way waits for its
/// turn inside its step, running nothing else: it counts as paused for the
/// capture under way (which would otherwise wait, in vain, for that worker
/// to run its pause callback: two captures from two workers deadlocked).
/// The pause callback it runs later finds that capture released.
class PauseWorkers {
 public:
  explicit PauseWorkers(Scheduler* scheduler)
      : scheduler_(scheduler), state_(std::make_shared<CaptureState>()) {
    if (!scheduler) return;
    Worker* self = current_worker();
    {
      std::unique_lock gate(scheduler->capture_mu);
      std::shared_ptr<CaptureState> counted;
      while (scheduler->capture_current) {
        if (self && scheduler->capture_current != counted) {
          counted = scheduler->capture_current;
          std::lock_guard lock(counted->mu);
          ++counted->arrived;
          counted->cv.notify_all();
        }
        scheduler->capture_cv.wait(gate);
      }
      scheduler->capture_current = state_;
    }
    for (auto& w : scheduler->workers) {
      if (w.get() == self) continue;
      ++expected_;
      std::shared_ptr<CaptureState> state = state_;
      w->loop().call_soon_threadsafe([state] {
        // Idle for the stall detector: a paused worker is not stalled.
        WorkerProbe* probe = t_probe;
        if (probe) probe->idle.store(true, std::memory_order_relaxed);
        std::unique_lock lock(state->mu);
        ++state->arrived;
        state->cv.notify_all();
        state->cv.wait(lock, [&] { return state->released; });
        lock.unlock();
        if (probe) {
          probe->idle.store(false, std::memory_order_relaxed);
          bump(probe->iterations);
        }
      });
    }
    std::unique_lock lock(state_->mu);
    if (!state_->cv.wait_for(lock, kPauseTimeout, [&] { return state_->arrived >= expected_; })) {
      state_->released = true;
      state_->cv.notify_all();
      lock.unlock();
      end_turn();
      throw RuntimeError(
          "capture_call_graph: a worker did not pause within 2 s (a step holds it: see the "
          "stall detector's report)");
    }
  }
  ~PauseWorkers() {
    {
      std::lock_guard lock(state_->mu);
      state_->released = true;
      state_->cv.notify_all();
    }
    end_turn();
  }
  PauseWorkers(const PauseWorkers&) = delete;
  PauseWorkers& operator=(const PauseWorkers&) = delete;

 private:
  void end_turn() noexcept {
    if (!scheduler_) return;
    std::lock_guard gate(scheduler_->capture_mu);
    scheduler_->capture_current.reset();
    scheduler_->capture_cv.notify_all();
  }

  Scheduler* scheduler_;
  std::shared_ptr<CaptureState> state_;
  unsigned expected_ = 0;
};

TaskRunState run_state(TaskCore* t) noexcept {
  switch (t->state()) {
    case TaskCore::kIdle:
      return TaskRunState::waiting;
    case TaskCore::kScheduled:
      return TaskRunState::ready;
    case TaskCore::kDone:
      return TaskRunState::done;
    default:
      return TaskRunState::running;
  }
}

/// Only with every worker that could run `t` paused (or on a standalone
/// loop's thread), and `t` not running: its frames hold still.
TaskCallGraph graph_of(TaskCore* t) {
  TaskCallGraph g;
  g.id = t->id();
  g.name = t->name();
  g.state = run_state(t);
  if (Worker* w = LoopAccess::impl(*t->home()).worker) g.worker = static_cast<int>(w->index());
  const CoroPromiseBase* root = t->root_promise();
  if (!root || g.state == TaskRunState::done) return g;
  if (Scheduler* s = LoopAccess::impl(*t->home()).scheduler; s && s->record_task_age)
    g.age = std::chrono::milliseconds(static_cast<std::uint32_t>(steady_ms32() - root->born_ms_));
  if (g.state == TaskRunState::running || !t->started() || !t->resume_in_coro()) {
    // Not suspended yet, or in a frame that is not a Coro's: the root only.
    g.call_stack.push_back({root->function_name(), {}, 0});
    if (t->started() && g.state != TaskRunState::running) g.awaits.kind = AwaitKind::other;
    return g;
  }
  // Bottom-up (await_record.hpp): the innermost frame says what it awaits,
  // each frame where it awaits, the chain of continuations leads to the root.
  const CoroPromiseBase* p =
      &std::coroutine_handle<CoroPromiseBase>::from_address(t->resume_point().address()).promise();
  p->describe_awaited(g.awaits);
  for (int depth = 0; p && depth < 1024; ++depth) {
    const std::source_location& where = p->await_where();
    g.call_stack.push_back(
        {p->function_name(), where.file_name() ? where.file_name() : "", where.line()});
    if (p == root) break;
    p = p->awaiting_coro();
  }
  // A frame of another coroutine type in between ends the walk short of
  // the root: the root still comes first, without its location.
  if (p != root) g.call_stack.push_back({root->function_name(), {}, 0});
  std::reverse(g.call_stack.begin(), g.call_stack.end());
  return g;
}

std::vector<TaskCallGraph> capture(TaskRegistry& registry, Scheduler* scheduler, TaskCore* only) {
  PauseWorkers pause(scheduler);
  std::vector<TaskCallGraph> out;
  registry.for_each([&](TaskCore* t) {
    if (t->as_future().done()) return;
    out.push_back(graph_of(t));
  });
  std::map<std::uint64_t, TaskCallGraph*> by_id;
  for (auto& g : out) by_id[g.id] = &g;
  for (auto& g : out)
    if (g.awaits.kind == AwaitKind::task)
      if (auto it = by_id.find(g.awaits.task_id); it != by_id.end())
        it->second->awaited_by.push_back(g.id);
  if (only) {
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const TaskCallGraph& g) { return g.id == only->id(); });
    std::vector<TaskCallGraph> one;
    if (it != out.end()) one.push_back(std::move(*it));
    return one;
  }
  std::sort(out.begin(), out.end(),
            [](const TaskCallGraph& a, const TaskCallGraph& b) { return a.id < b.id; });
  return out;
}

LoopImpl& running_loop(const char* what) {
  LoopImpl* loop = current_loop_impl();
  if (!loop) throw RuntimeError(std::string(what) + ": no running event loop on this thread");
  return *loop;
}

std::string describe(const AwaitTarget& a) {
  char buf[64];
  std::string out = to_string(a.kind);
  if (a.object) {
    std::snprintf(buf, sizeof buf, " %p", a.object);
    out += buf;
  }
  if (a.kind == AwaitKind::task) out += " (task id " + std::to_string(a.task_id) + ")";
  if (a.delay) {
    std::snprintf(buf, sizeof buf, " %.3f s", std::chrono::duration<double>(*a.delay).count());
    out += buf;
  }
  if (a.deadline) {
    std::snprintf(buf, sizeof buf, ", due in %.3f s",
                  std::chrono::duration<double>(*a.deadline - Clock::now()).count());
    out += buf;
  }
  return out;
}

void tree(const std::vector<TaskCallGraph>& graphs, const TaskCallGraph& g,
          const std::string& prefix, bool last, std::set<std::uint64_t>& on_path,
          std::string& out) {
  std::string age;
  if (g.age) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ", age %.1fs", std::chrono::duration<double>(*g.age).count());
    age = buf;
  }
  out += prefix + (last ? "└── " : "├── ") + "(T) " + g.name + " [id " + std::to_string(g.id) +
         ", " + to_string(g.state) + age + "]\n";
  std::string inner = prefix + (last ? "    " : "│   ");
  std::string indent = inner;
  for (const CallFrame& f : g.call_stack) {
    out += indent + "└── " + f.function;
    if (!f.file.empty()) out += "  " + f.file + ":" + std::to_string(f.line);
    out += '\n';
    indent += "    ";
  }
  if (g.awaits.kind != AwaitKind::none) out += indent + "└── awaits " + describe(g.awaits) + '\n';
  if (g.awaits.kind != AwaitKind::task) return;
  for (const TaskCallGraph& child : graphs) {
    if (child.id != g.awaits.task_id) continue;
    if (on_path.count(child.id)) {
      out += indent + "    └── (T) " + child.name + " [id " + std::to_string(child.id) +
             "] (a cycle: it awaits back)\n";
      return;
    }
    on_path.insert(child.id);
    tree(graphs, child, indent, true, on_path, out);
    on_path.erase(child.id);
  }
}

}  // namespace
}  // namespace detail

TaskCallGraph capture_call_graph(const TaskRef& task) {
  if (!task) throw ValueError("capture_call_graph: an empty TaskRef");
  detail::LoopImpl& loop = detail::running_loop("capture_call_graph");
  detail::TaskCore* core = detail::TaskAccess::core(task);
  if (detail::LoopAccess::impl(*core->home()).registry != loop.registry)
    throw ValueError("capture_call_graph: the task belongs to another runtime or loop");
  std::vector<TaskCallGraph> one = detail::capture(*loop.registry, loop.scheduler, core);
  if (one.empty()) {
    TaskCallGraph g;
    g.id = core->id();
    g.name = task.get_name();
    g.state = TaskRunState::done;
    return g;
  }
  return std::move(one.front());
}

std::vector<TaskCallGraph> capture_call_graphs() {
  detail::LoopImpl& loop = detail::running_loop("capture_call_graphs");
  return detail::capture(*loop.registry, loop.scheduler, nullptr);
}

namespace detail {
std::vector<TaskCallGraph> capture_scheduler_graphs(Scheduler& s) {
  if (Worker* w = current_worker(); w && w->scheduler() == &s) return capture_call_graphs();
  if (s.stopped.load(std::memory_order_acquire))
    throw RuntimeError("capture_call_graphs: the runtime is shut down");
  return capture(s.registry, &s, nullptr);
}
}  // namespace detail

std::vector<TaskCallGraph> capture_call_graphs(Runtime& runtime) {
  return detail::capture_scheduler_graphs(*runtime.scheduler_);
}

std::string format_call_graph_tree(const std::vector<TaskCallGraph>& graphs) {
  std::string out;
  std::vector<const TaskCallGraph*> roots;
  for (const auto& g : graphs)
    if (g.awaited_by.empty()) roots.push_back(&g);
  // Tasks that only await each other (a cycle) have no root: they follow.
  std::set<std::uint64_t> reached;
  auto mark = [&](auto& self, const TaskCallGraph& g) -> void {
    if (!reached.insert(g.id).second || g.awaits.kind != AwaitKind::task) return;
    for (const auto& c : graphs)
      if (c.id == g.awaits.task_id) self(self, c);
  };
  for (const TaskCallGraph* r : roots) mark(mark, *r);
  for (const auto& g : graphs)
    if (!reached.count(g.id)) {
      roots.push_back(&g);
      mark(mark, g);
    }
  std::set<std::uint64_t> on_path;
  for (std::size_t i = 0; i < roots.size(); ++i) {
    on_path.insert(roots[i]->id);
    detail::tree(graphs, *roots[i], "", i + 1 == roots.size(), on_path, out);
    on_path.erase(roots[i]->id);
  }
  return out;
}

void print_call_graph(std::FILE* out) {
  std::string text = format_call_graph_tree(capture_call_graphs());
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

}  // namespace weft

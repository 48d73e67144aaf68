// Await chains (Python 3.14's asyncio.capture_call_graph / print_call_graph,
// `python -m asyncio pstree`): for each task, the chain of coroutine frames
// it is suspended in, each with the source location of its co_await, and
// what the innermost one awaits (AwaitTarget: a future, a task, a sleep, a
// lock, ... with the object's identity).
//
// Recording costs one pointer store per co_await (detail/await_record.hpp).
// Reading needs every frame still: the capture pauses every other worker of
// the runtime between two steps (a callback queued to each loop, which
// blocks until the capture is done), so no task runs while its chain is
// read. A worker that does not pause within 2 s (a stalled step: see the
// stall detector) makes the capture throw instead. The calling task itself
// is running: its graph has its root frame only.
#pragma once

#include <weft/await_target.hpp>
#include <weft/task.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace weft {

class Runtime;

/// One coroutine frame of an await chain.
struct CallFrame {
  /// The async function (the coroutine's signature, as the compiler spells it).
  std::string function;
  /// Where it awaits: the co_await expression.
  std::string file;
  unsigned line = 0;
};

enum class TaskRunState : std::uint8_t { waiting, ready, running, done };
const char* to_string(TaskRunState state) noexcept;

/// asyncio's FutureCallGraph for one task.
struct TaskCallGraph {
  std::uint64_t id = 0;
  std::string name;
  TaskRunState state = TaskRunState::waiting;
  /// The index of the worker whose loop the task was created on (its home;
  /// an unpinned task may run on any worker); -1 on a standalone loop.
  int worker = -1;
  /// How long ago the task was created, where its runtime records it (with
  /// RunOptions::introspect set: one clock read per spawn); empty elsewhere.
  std::optional<std::chrono::milliseconds> age;
  /// The task's frames, outermost (the task's coroutine) first.
  std::vector<CallFrame> call_stack;
  /// What the innermost frame awaits (AwaitKind::none while running or not started).
  AwaitTarget awaits;
  /// Tasks that await this one (their ids).
  std::vector<std::uint64_t> awaited_by;
};

/// asyncio.capture_call_graph(task): `task`'s graph. Inside a running loop
/// of the task's runtime (or standalone loop). @throws RuntimeError outside
/// a loop, or when a worker does not pause within 2 s.
TaskCallGraph capture_call_graph(const TaskRef& task);
/// Every pending task of the running loop's runtime (or standalone loop).
/// @throws RuntimeError as capture_call_graph.
std::vector<TaskCallGraph> capture_call_graphs();
/// Every pending task of `runtime`, from a thread that is not one of its
/// workers (weft-ps's endpoint). @throws RuntimeError as capture_call_graph.
std::vector<TaskCallGraph> capture_call_graphs(Runtime& runtime);

/// The graphs as a tree of who awaits whom (`python -m asyncio pstree`):
/// tasks nobody awaits at the top, each task's frames under it, then what it
/// awaits, and the tasks it awaits nested below.
std::string format_call_graph_tree(const std::vector<TaskCallGraph>& graphs);
/// print_call_graph(): format_call_graph_tree(capture_call_graphs()) to `out`.
void print_call_graph(std::FILE* out = stdout);

}  // namespace weft

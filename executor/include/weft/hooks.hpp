// Runtime hooks (Tokio's Builder::on_task_spawn, on_before_task_poll,
// on_after_task_poll, on_task_terminate, on_thread_park, on_thread_unpark):
// callbacks a Runtime calls at points of a task's and a worker's life. They
// are set in RunOptions; unset, each costs one null check.
//
// Hooks run on the thread where the event happens, inside the runtime's
// scheduling path: concurrently on several workers, so they must be
// thread-safe, fast, must not throw (an exception terminates) and must not
// await or block. A task hook may read the task (TaskMeta::name(),
// TaskMeta::task()) but a poll hook must not cancel or rename it.
#pragma once

#include <weft/task.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace weft {

/// The task a hook is about.
class TaskMeta {
 public:
  /// The task's id: unique within its runtime, increasing in spawn order.
  std::uint64_t id() const noexcept;
  /// Task.get_name().
  std::string name() const;
  /// A handle to the task (it takes a reference: cheap, not free).
  TaskRef task() const noexcept { return detail::TaskAccess::make<TaskRef>(core_); }

 private:
  friend struct detail::TaskAccess;
  explicit TaskMeta(detail::TaskCore* core) noexcept : core_(core) {}
  detail::TaskCore* core_;
};

using TaskHook = std::function<void(const TaskMeta&)>;
/// Called with the index of the worker that parks or unparks.
using WorkerHook = std::function<void(unsigned worker)>;

}  // namespace weft

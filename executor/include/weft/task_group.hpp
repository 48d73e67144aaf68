// task_group(): asyncio.TaskGroup.
//
//   co_await weft::task_group([](weft::TaskGroup& tg) -> weft::Coro<void> {
//     auto a = tg.create_task(fetch(1));
//     auto b = tg.create_task(fetch(2));
//     co_return;
//   });   // returns once the body and every task are done
//
// The body (a callable taking TaskGroup& and returning Coro<R>) runs inline in
// the calling ("parent") task; task_group returns the body's value once the
// body and all tasks created in the group are done, including tasks that
// tasks add while the group runs (TG-01, TG-10). Cancelling one task
// explicitly affects nothing else (TG-02). The first task to fail with an
// exception other than CancelledError cancels the other tasks and the body (at
// its current await); once all are done, task_group throws an ExceptionGroup
// holding every non-cancellation error, the body's last (TG-03, TG-04; groups
// nest, TG-07). Cancelling the parent from outside cancels every task and
// re-raises CancelledError, not a group (TG-05), unless tasks raised during
// their cleanup: then the ExceptionGroup wins (TG-06). The parent's cancel
// count is restored once the group has handled its own cancellation, while an
// outside cancel() that arrived meanwhile stays pending (TG-11).
//
// TaskGroup::create_task may be called from any task while the group runs.
// Lifecycle errors are RuntimeError (TG-09): creating a task once the group is
// aborting ("is shutting down") or finished ("is finished").
//
// Implementation (asyncio's TaskGroup): done callbacks may run on several
// loops at once (tasks can be added from tasks on other workers), so the
// group's state lives in TaskGroupCore under one mutex. Invariant: whoever
// cancels the parent or a task on the group's behalf does so while holding
// the mutex, so the exit path (which reads and uncancels under the same
// mutex) never misses a cancellation it must withdraw. Lock order: the
// group's mutex, then task cancellation locks, then future locks.
//
// GCC 12 caveat: a lambda temporary whose captures have non-trivial
// destructors (a Future, a std::string, a shared_ptr) must not be created
// inside the co_await expression itself: GCC 12 destroys such closure (and
// aggregate) temporaries twice. Bind the Coro first, or capture by reference:
//
//   auto c = weft::task_group([fut](weft::TaskGroup& tg) -> weft::Coro<void> { ... });
//   co_await std::move(c);
#pragma once

#include <weft/coro.hpp>
#include <weft/errors.hpp>
#include <weft/future.hpp>
#include <weft/outcome.hpp>
#include <weft/task.hpp>

#include <concepts>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft {
namespace detail {

class TaskGroupCore : public std::enable_shared_from_this<TaskGroupCore> {
 public:
  /// __aenter__. @throws RuntimeError outside a task.
  TaskGroupCore();

  /// Checks that a task may be added (TG-09).
  /// @throws RuntimeError when aborting or finished.
  void check_open();
  /// Adds a task created after check_open(). The task is created outside the
  /// group's lock because an eager start runs its first step inside
  /// create_task, and that step may add tasks to this group itself. If the
  /// group began to abort or finished in between, the task is cancelled and
  /// RuntimeError raised, as check_open() would have.
  void add_created(TaskRef task, FutureBase& state);

  /// __aexit__: `body_error` is what the body raised (null if it returned).
  /// Returns normally only when there is nothing to raise.
  static Coro<void> exit(std::shared_ptr<TaskGroupCore> self, std::exception_ptr body_error);

 private:
  void on_task_done(std::uint64_t key, FutureBase& f);
  void add_locked(TaskRef task, FutureBase& state);
  void abort_locked();

  std::mutex mu_;
  // All below guarded by mu_.
  TaskRef parent_;
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
  std::uint64_t next_key_ = 0;
  std::map<std::uint64_t, TaskRef> tasks_;  // not yet reported done, creation order
  std::vector<std::exception_ptr> errors_;
  std::optional<Future<void>> on_completed_;
};

struct TaskGroupAccess;

}  // namespace detail

/// The handle a task_group body receives. Valid only while the group runs
/// (until task_group returns); do not keep it beyond.
class TaskGroup {
 public:
  TaskGroup() : core_(std::make_shared<detail::TaskGroupCore>()) {}
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Schedules `coro` as a task of this group (any thread, from a task).
  /// @throws RuntimeError if the group is shutting down or finished (the Coro
  ///         is destroyed, never run), or outside a running loop.
  template <class T>
  Task<T> create_task(Coro<T> coro) {
    return create_task(std::move(coro), TaskOptions{});
  }
  /// With a name or pinning. (Overloads rather than a default argument: a
  /// defaulted TaskOptions{} is an aggregate temporary that GCC 12 mishandles
  /// inside a co_await expression; see weft::create_task.)
  template <class T>
  Task<T> create_task(Coro<T> coro, TaskOptions options) {
    core_->check_open();
    Task<T> task = weft::create_task(std::move(coro), std::move(options));
    core_->add_created(TaskRef(task), *detail::FutureAccess::state(task));
    return task;
  }
  /// Any other awaitable (`tg.create_task(q.get())`) as a task of this group.
  template <detail::TaskableAwaitable A>
  Task<detail::await_value_t<A>> create_task(A awaitable) {
    return create_task(detail::as_coro(std::move(awaitable)), TaskOptions{});
  }
  template <detail::TaskableAwaitable A>
  Task<detail::await_value_t<A>> create_task(A awaitable, TaskOptions options) {
    return create_task(detail::as_coro(std::move(awaitable)), std::move(options));
  }

 private:
  friend struct detail::TaskGroupAccess;
  std::shared_ptr<detail::TaskGroupCore> core_;
};

namespace detail {

/// What task_group needs of its TaskGroup beyond its API: the shared core.
struct TaskGroupAccess {
  static const std::shared_ptr<TaskGroupCore>& core(const TaskGroup& g) noexcept { return g.core_; }
};

template <class F>
concept TaskGroupBody = std::invocable<F&, TaskGroup&> && requires {
  typename std::invoke_result_t<F&, TaskGroup&>::value_type;
} && std::same_as<std::invoke_result_t<F&, TaskGroup&>,
                  Coro<typename std::invoke_result_t<F&, TaskGroup&>::value_type>>;

template <class F>
using task_group_result_t = typename std::invoke_result_t<F&, TaskGroup&>::value_type;

}  // namespace detail

/// asyncio.TaskGroup: runs body(group) and waits for every task of the group.
/// @throws ExceptionGroup ("unhandled errors in a TaskGroup") with the errors;
///         CancelledError if the parent was cancelled from outside;
///         RuntimeError outside a task.
template <class F>
requires detail::TaskGroupBody<F> Coro<detail::task_group_result_t<F>> task_group(F body) {
  using R = detail::task_group_result_t<F>;
  TaskGroup group;
  std::exception_ptr error;
  std::optional<detail::value_or_monostate<R>> result;
  try {
    Coro<R> c = body(group);
    if constexpr (std::is_void_v<R>) {
      co_await std::move(c);
      result.emplace();
    } else {
      R value = co_await std::move(c);
      result.emplace(std::move(value));
    }
  } catch (...) {
    error = std::current_exception();
  }
  co_await detail::TaskGroupCore::exit(detail::TaskGroupAccess::core(group), error);
  if (error) std::rethrow_exception(error);  // asyncio: __aexit__ returned None
  if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

}  // namespace weft

// Task<T>: a Coro scheduled on the runtime (asyncio.Task). A Task<T> is a
// Future<T>: done(), result(), cancel(), add_done_callback(), co_await.
//
// Dropping every handle does not cancel a task: the runtime keeps it alive
// until it finishes. Names default to "Task-<n>", n counting from 1 per
// runtime (or standalone loop). cancel(msg) only requests cancellation
// (TASK-03): CancelledError is thrown in at the task's current await;
// cancelling() counts pending requests and uncancel() withdraws one.
#pragma once

#include <weft/coro.hpp>
#include <weft/future.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace weft {

struct TaskOptions {
  /// Empty: "Task-<n>".
  std::string name;
  /// A pinned task always runs on the loop that created it; an unpinned task
  /// may be stolen by any worker.
  bool pinned = false;
  /// Eager start (asyncio 3.12's eager_task_factory, 3.14's eager_start):
  /// create_task runs the task's first step at once, on the calling thread,
  /// before it returns; a task that finishes without suspending is never
  /// scheduled. Only where create_task is called on the task's own loop (from
  /// a task or a callback of that loop), and at most 64 eager starts deep on
  /// one thread (a chain of tasks each creating the next); elsewhere the
  /// task starts lazily.
  /// Empty: RunOptions::eager_tasks (false for a standalone EventLoop).
  std::optional<bool> eager = std::nullopt;
};

namespace detail {

/// Registers, names and schedules a new task's first step: lazily (the body
/// starts only when a worker runs that step, CORO-02), or, when `eager`
/// (empty: the runtime's default) and called on the task's home loop, by
/// running that step here and now.
void launch_task(TaskCore* task, std::string name, std::optional<bool> eager);
/// Whether a task created on `home` is loop-affine.
bool must_run_on_home(EventLoop* home, bool pinned) noexcept;

template <class T>
class TaskState final : public FutureState<T>, public TaskCore {
  using Root = typename Coro<T>::handle_type;

 public:
  /// Whether the state lives in the room in front of its root frame (one
  /// allocation, frame_allocator.hpp); else (a large result) it is allocated
  /// apart and keeps a pointer to the root. FutureState<T> is the first base
  /// and a multiple of 8 bytes: the state is exactly the two bases.
  static constexpr bool kInFrameBlock =
      alignof(FutureState<T>) <= 8 && sizeof(FutureState<T>) + sizeof(TaskCore) <= kTaskRoom;

  TaskState(Root root, EventLoop* home, bool pinned)
      : FutureState<T>(home, /*is_task=*/true), TaskCore(home, must_run_on_home(home, pinned)) {
    if constexpr (!kInFrameBlock) apart_root_ = root;
    set_resume_point(root);
  }
  ~TaskState() override { destroy_root(); }
  FutureBase& as_future() noexcept override { return *this; }
  const TaskCore* task_core() const noexcept override { return this; }
  CoroPromiseBase* root_promise() const noexcept override {
    if (!resume_point_) return nullptr;
    return &root().promise();
  }
  bool cancel(std::string message) override { return request_cancel(std::move(message)); }

  // Only for a state allocated apart; one in the frame's block is constructed
  // there by spawn_on.
  static void* operator new(std::size_t size) { return frame_allocate(size); }
  static void operator delete(void* p, std::size_t size) noexcept {
    if constexpr (kInFrameBlock)
      release_task_block(p);
    else
      frame_deallocate(p, size);
  }

 private:
  Root root() const noexcept {
    if constexpr (kInFrameBlock)
      return Root::from_address(reinterpret_cast<unsigned char*>(const_cast<TaskState*>(this)) +
                                kFramePrefix);
    else
      return apart_root_;
  }
  void destroy_root() noexcept override {
    if (!resume_point_) return;
    resume_point_ = {};
    root().destroy();
  }
  void finish_root(bool cancelled_before_start) override {
    Root root = this->root();
    std::string message;
    if (cancelled_before_start) {
      take_must_cancel(message);
      this->set_cancelled(std::move(message));
    } else {
      auto& promise = root.promise();
      if (promise.exception_) {
        std::exception_ptr e = promise.exception_;
        if (is_cancelled_error(e)) {
          this->set_cancelled(cancel_message_of(e));
        } else {
          this->set_exception_ptr(std::move(e));
        }
      } else if (take_self_cancel(message)) {
        this->set_cancelled(std::move(message));
      } else if constexpr (std::is_void_v<T>) {
        this->set_value();
      } else {
        this->set_value(std::move(*promise.value_));
      }
    }
    resume_point_ = {};
    root.destroy();
  }
  static std::string cancel_message_of(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const CancelledError& c) {
      return c.message();
    } catch (...) {
      return {};
    }
  }

  struct NoRoot {};
  [[no_unique_address]] std::conditional_t<kInFrameBlock, NoRoot, Root> apart_root_;
};

template <class T>
Task<T> spawn_on(EventLoop* home, Coro<T> coro, TaskOptions options);
struct TaskAccess;

}  // namespace detail

template <class T>
class Task : public Future<T> {
 public:
  /// An empty handle (valid() is false).
  Task() noexcept : Future<T>(detail::AdoptState{}, nullptr) {}

  std::string get_name() const { return core().name(); }
  void set_name(std::string name) const { core().set_name(std::move(name)); }
  /// Number of pending cancellation requests (TASK-12).
  int cancelling() const { return core().cancelling(); }
  /// Withdraws one request; returns the new count (TASK-13).
  int uncancel() const { return core().uncancel(); }

  detail::FutureAwaiter<T, false> operator co_await() const& noexcept {
    return detail::FutureAwaiter<T, false>(this->state_);
  }
  detail::FutureAwaiter<T, true> operator co_await() && noexcept {
    return detail::FutureAwaiter<T, true>(this->state_);
  }

 private:
  friend struct detail::TaskAccess;
  /// Adopts one reference to a task state (detail::TaskAccess::adopt).
  Task(detail::AdoptState, detail::TaskState<T>* state) noexcept
      : Future<T>(detail::AdoptState{}, state) {}
  detail::TaskCore& core() const { return *static_cast<detail::TaskState<T>*>(&this->state()); }
};

/// A type-erased handle to any task (what current_task() and all_tasks() return).
class TaskRef {
 public:
  TaskRef() noexcept = default;
  TaskRef(const TaskRef& other) noexcept;
  TaskRef& operator=(TaskRef other) noexcept;
  ~TaskRef();
  template <class T>
  TaskRef(const Task<T>& t);

  explicit operator bool() const noexcept { return core_ != nullptr; }
  std::string get_name() const;
  void set_name(std::string name) const;
  bool done() const;
  bool cancelled() const;
  bool cancel(std::string message = {}) const;
  int cancelling() const;
  int uncancel() const;
  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept { return a.core_ == b.core_; }

 private:
  friend struct detail::TaskAccess;
  /// Takes a reference to `core` (detail::TaskAccess::make).
  explicit TaskRef(detail::TaskCore* core) noexcept;
  detail::TaskCore* core_ = nullptr;
};

namespace detail {
/// What weft's own templates and sources need of a Task or TaskRef beyond
/// their API: the task's core, and a handle that adopts a reference.
struct TaskAccess {
  template <class T>
  static TaskCore& core(const Task<T>& t) {
    return t.core();
  }
  /// Null for an empty TaskRef.
  static TaskCore* core(const TaskRef& t) noexcept { return t.core_; }
  /// A handle of type H (TaskRef, TaskMeta) to `core`.
  template <class H>
  static H make(TaskCore* core) noexcept {
    return H(core);
  }
  /// A handle adopting one reference to `state`.
  template <class T>
  static Task<T> adopt(TaskState<T>* state) noexcept {
    return Task<T>(AdoptState{}, state);
  }
};

template <class T>
Task<T> spawn_on(EventLoop* home, Coro<T> coro, TaskOptions options) {
  static_assert(TaskState<void>::kInFrameBlock && TaskState<long>::kInFrameBlock,
                "kTaskRoom holds the state of a task of a small result");
  static_assert(!TaskState<T>::kInFrameBlock || sizeof(TaskState<T>) <= kTaskRoom);
  auto root = coro.release();
  TaskState<T>* state;
  if constexpr (TaskState<T>::kInFrameBlock)
    state = ::new (claim_task_room(root.address())) TaskState<T>(root, home, options.pinned);
  else
    state = new TaskState<T>(root, home, options.pinned);
  state->add_ref();  // the handle's reference; the first is the runtime's, until it finishes
  launch_task(state, std::move(options.name), options.eager);
  return TaskAccess::adopt(state);
}
}  // namespace detail

template <class T>
TaskRef::TaskRef(const Task<T>& t) : TaskRef(&detail::TaskAccess::core(t)) {}

/// The task running on this thread; empty outside a task.
TaskRef current_task();
/// Every task of the running loop's runtime (or standalone loop) not yet done.
/// @throws RuntimeError outside a running loop.
std::vector<TaskRef> all_tasks();

/// Schedules `coro` on the running loop (asyncio.create_task).
/// @throws RuntimeError if no loop runs on this thread.
template <class T>
Task<T> create_task(Coro<T> coro, TaskOptions options) {
  EventLoop* loop = detail::current_loop();
  if (!loop) throw RuntimeError("create_task: no running event loop on this thread");
  return detail::spawn_on(loop, std::move(coro), std::move(options));
}
/// An overload rather than a default argument: a defaulted `TaskOptions{}` is
/// an aggregate temporary in the caller's full-expression, and GCC 12
/// bit-copies aggregate temporaries of a co_await expression inside a
/// coroutine (the copy's std::string then frees the original's inline
/// buffer), which broke `co_await weft::create_task(f())` (found by ASan).
template <class T>
Task<T> create_task(Coro<T> coro) {
  return create_task(std::move(coro), TaskOptions{});
}

namespace detail {
/// An awaitable other than a Coro, Task or Future: `q.get()`,
/// `lock.acquire()`, `weft::sleep(d)`, a user's awaitable type.
template <class A>
concept TaskableAwaitable =
    Awaitable<A> && !is_coro<std::remove_cvref_t<A>>::value && !is_future_handle_v<A>;
}  // namespace detail

/// Schedules any other awaitable as a task of its own:
/// `auto t = weft::create_task(q.get());`.
template <detail::TaskableAwaitable A>
Task<detail::await_value_t<A>> create_task(A awaitable, TaskOptions options) {
  return create_task(detail::as_coro(std::move(awaitable)), std::move(options));
}
template <detail::TaskableAwaitable A>
Task<detail::await_value_t<A>> create_task(A awaitable) {
  return create_task(detail::as_coro(std::move(awaitable)), TaskOptions{});
}

}  // namespace weft

// Future<T>: an awaitable result slot (asyncio.Future), thread-safe, any
// number of waiters.
//
// Future<T> is a cheap, copyable, reference-counted handle to one shared
// state. Every member may be called from any thread. Done callbacks never run
// inside set_result/set_exception/cancel: they are queued (call_soon) on the
// loop that registered them (FUT-07, FUT-08); a callback registered from a
// thread with no running loop goes to the future's own loop, or, for a future
// created outside any loop, runs on the completing thread.
//
// `co_await fut` suspends until the future is done and returns result();
// awaiting a done future does not yield (FUT-10). Awaiting an lvalue returns a
// copy; awaiting an rvalue (`co_await std::move(fut)`) moves the value out, so
// move-only results work (other handles then see a moved-from value).
#pragma once

#include <weft/await_target.hpp>
#include <weft/detail/await_record.hpp>
#include <weft/detail/coop.hpp>
#include <weft/detail/future_state.hpp>
#include <weft/detail/task_core.hpp>

#include <coroutine>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

namespace weft {

template <class T = void>
class Future;
template <class T = void>
class Task;

namespace detail {
struct FutureAccess;

/// What awaiting `state` shows in an await chain: the Future, or the Task
/// (its TaskCore and id).
inline void describe_future(const FutureBase& state, AwaitTarget& out) noexcept {
  if (const TaskCore* task = state.task_core()) {
    out.kind = AwaitKind::task;
    out.object = task;
    out.task_id = task->id();
  } else {
    out.kind = AwaitKind::future;
    out.object = &state;
  }
}

/// Awaits a future's state. Move: the value is moved out. KeepCancel: for a
/// future the caller cannot read afterwards (an internal one: gather's,
/// shield's), an outcome that arrived before a cancellation is delivered and
/// the cancellation is left for the next suspension (see task_core.hpp).
template <class T, bool Move, bool KeepCancel = false>
class FutureAwaiter {
 public:
  using weft_native_awaitable = void;

  explicit FutureAwaiter(FutureState<T>* state) noexcept : state_(state) {}
  // Moved only before it is awaited (GCC may move awaiters into the frame).
  FutureAwaiter(FutureAwaiter&& other) noexcept : state_(other.state_) {}
  FutureAwaiter& operator=(FutureAwaiter&&) = delete;
  ~FutureAwaiter() {
    // Only a frame destroyed while still suspended (forced shutdown) gets here
    // with the node registered.
    if (node_.suspended && !state_->done()) state_->remove_waiter(&node_);
  }

  bool await_ready() noexcept { return state_->done() && coop_take(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    TaskCore& task = require_task("co_await on a Future");
    if (&task.as_future() == state_) throw RuntimeError("Task cannot await on itself");
    node_.task = &task;
    suspend_at(task, h, *this);
    if (state_->done() && !coop_take()) {
      // The step's budget is spent (detail/coop.hpp): yield, then return the result.
      node_.yielded = true;
      task.yield_suspend();
      return true;
    }
    if (!state_->add_task_waiter(&node_)) return false;
    node_.suspended = true;
    task.begin_wait(state_);
    return true;
  }
  /// A Future, or a Task (the awaited task's state and id).
  void weft_describe_await(AwaitTarget& out) const noexcept { describe_future(*state_, out); }
  T await_resume() {
    if (node_.yielded) {
      node_.yielded = false;
      if constexpr (KeepCancel) {
        node_.task->end_wait_keeping_cancel();
      } else {
        node_.task->end_wait();
      }
    } else if (node_.suspended) {
      node_.suspended = false;
      // Woken only by completion, so the future is done here.
      if constexpr (KeepCancel) {
        node_.task->end_wait_keeping_cancel();
      } else {
        node_.task->end_wait();
      }
    }
    state_->check_result();
    if constexpr (std::is_void_v<T>)
      return;
    else if constexpr (Move)
      return std::move(state_->value_ref());
    else
      return state_->value_ref();
  }

 private:
  FutureState<T>* state_;
  TaskWaiterNode node_;  // with this awaiter's suspended and yielded flags
};

struct AdoptState {};

/// A Future<T> or Task<T> handle (Task derives from Future).
template <class T>
std::true_type future_handle_probe(const Future<T>*);
std::false_type future_handle_probe(const void*);
template <class A>
inline constexpr bool is_future_handle_v =
    decltype(future_handle_probe(static_cast<std::remove_cvref_t<A>*>(nullptr)))::value;

}  // namespace detail

template <class T>
class Future {
 public:
  using weft_native_awaitable = void;
  using value_type = T;

  /// A new pending future, bound to the running loop (if any).
  Future() : state_(new detail::FutureState<T>(detail::current_loop())) {}
  Future(const Future& other) noexcept : state_(other.state_) {
    if (state_) state_->add_ref();
  }
  Future(Future&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Future& operator=(Future other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~Future() {
    if (state_) state_->release();
  }

  /// False only for a moved-from (or default Task) handle.
  bool valid() const noexcept { return state_ != nullptr; }
  bool done() const { return state().done(); }
  bool cancelled() const { return state().cancelled(); }

  /// The value. @throws InvalidStateError if pending, CancelledError if
  /// cancelled, the stored exception if it failed.
  T result() const requires(std::is_void_v<T> || std::is_copy_constructible_v<T>) {
    state().check_result();
    if constexpr (!std::is_void_v<T>) return state_->value_ref();
  }
  /// The stored exception (null on success). @throws InvalidStateError if
  /// pending, CancelledError if cancelled.
  std::exception_ptr exception() const { return state().exception(); }

  /// @throws InvalidStateError if already done; RuntimeError on a Task.
  template <class U = T>
  requires(!std::is_void_v<T> && std::is_convertible_v<U&&, T>) void set_result(U&& value) {
    check_settable("set_result");
    if (!state_->set_value(std::forward<U>(value)))
      throw InvalidStateError("Future::set_result: invalid state (future is already done)");
  }
  void set_result() requires std::is_void_v<T> {
    check_settable("set_result");
    if (!state_->set_value())
      throw InvalidStateError("Future::set_result: invalid state (future is already done)");
  }
  void set_exception(std::exception_ptr e) {
    check_settable("set_exception");
    if (!e) throw ValueError("Future::set_exception: null exception_ptr");
    if (!state_->set_exception_ptr(std::move(e)))
      throw InvalidStateError("Future::set_exception: invalid state (future is already done)");
  }
  /// Future: cancels it (true if it was pending). Task: requests cancellation.
  bool cancel(std::string message = {}) const { return state().cancel(std::move(message)); }

  /// Queues fn(future) on the registering loop once the future is done.
  CallbackId add_done_callback(std::function<void(Future)> fn) const {
    detail::FutureState<T>* s = state_;
    return state().add_done_callback([s, fn = std::move(fn)](detail::FutureBase&) {
      s->add_ref();
      fn(Future(detail::AdoptState{}, s));
    });
  }
  /// Removes a callback that has not been scheduled yet; returns how many (0 or 1).
  std::size_t remove_done_callback(CallbackId id) const { return state().remove_done_callback(id); }

  detail::FutureAwaiter<T, false> operator co_await() const& noexcept {
    return detail::FutureAwaiter<T, false>(state_);
  }
  detail::FutureAwaiter<T, true> operator co_await() && noexcept {
    return detail::FutureAwaiter<T, true>(state_);
  }

  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }

 protected:
  friend struct detail::FutureAccess;
  /// Adopts one reference to `state` (detail::FutureAccess::adopt; Task's).
  Future(detail::AdoptState, detail::FutureState<T>* state) noexcept : state_(state) {}
  detail::FutureState<T>& state() const {
    if (!state_) throw InvalidStateError("use of an empty (moved-from) Future or Task handle");
    return *state_;
  }
  void check_settable(const char* what) const {
    if (state().is_task()) throw RuntimeError(std::string("Task does not support ") + what + "()");
  }

  detail::FutureState<T>* state_ = nullptr;
};

namespace detail {
/// What weft's own templates and sources need of a Future beyond its API:
/// its shared state, and a handle that adopts a reference to a state.
struct FutureAccess {
  /// The shared state; null for an empty (moved-from) handle.
  template <class T>
  static FutureState<T>* state(const Future<T>& f) noexcept {
    return f.state_;
  }
  /// A handle adopting one reference to `state`.
  template <class T>
  static Future<T> adopt(FutureState<T>* state) noexcept {
    return Future<T>(AdoptState{}, state);
  }
};
}  // namespace detail

}  // namespace weft

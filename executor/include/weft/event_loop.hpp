// EventLoop: one asyncio event loop. A Runtime owns one per worker thread; a
// standalone EventLoop runs on the calling thread and gives plain
// single-threaded asyncio:
//
//   weft::EventLoop loop;
//   int v = loop.run_until_complete(main());
//
// Ordering (LOOP-01..08): one iteration drains the remote inbox, polls I/O
// (timeout 0 if anything is ready, else until the next timer), appends due
// timers (deadline order, ties by insertion) behind the callbacks already
// ready, then runs exactly the callbacks that were ready at that moment, FIFO.
//
// Unlike asyncio, every member is safe to call from any thread: a call from
// the loop's own thread takes the fast path, a call from elsewhere goes
// through the loop's remote inbox and wakes it.
#pragma once

#include <weft/coro.hpp>
#include <weft/future.hpp>
#include <weft/loop_options.hpp>
#include <weft/task.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::nanoseconds;
using Callback = std::function<void()>;

class Executor;
class EventLoop;

namespace detail {
class HandleState;
class LoopImpl;
struct LoopAccess;
}  // namespace detail

/// A scheduled callback (call_soon); cancel() keeps it from running.
class Handle {
 public:
  Handle() noexcept = default;
  explicit Handle(detail::HandleState* state) noexcept;  // adopts a reference
  Handle(const Handle& other) noexcept;
  Handle& operator=(Handle other) noexcept;
  ~Handle();
  /// Prevents the callback from running if it has not run yet (any thread).
  void cancel() const;
  bool cancelled() const;
  explicit operator bool() const noexcept { return state_ != nullptr; }

 protected:
  detail::HandleState* state_ = nullptr;
};

/// A scheduled timer (call_later / call_at). Cancelling is O(1).
class TimerHandle : public Handle {
 public:
  using Handle::Handle;
  /// The deadline, on the loop's clock.
  TimePoint when() const;
};

struct ExceptionContext {
  std::string message;
  std::exception_ptr exception;
  /// The task involved, if any.
  std::optional<TaskRef> task;
  /// The callback handle involved, if any.
  std::optional<Handle> handle;
};
using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

class EventLoop {
 public:
  /// A standalone loop, run on the thread that calls run_* on it.
  explicit EventLoop(LoopOptions options = {});
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Queues `cb` (FIFO). @throws RuntimeError if the loop is closed.
  Handle call_soon(Callback cb);
  Handle call_soon_threadsafe(Callback cb);
  /// Runs `cb` once, no earlier than time() + delay. A negative delay is due at
  /// once but keeps its deadline's place in the timer order (LOOP-04).
  TimerHandle call_later(Duration delay, Callback cb);
  TimerHandle call_at(TimePoint when, Callback cb);
  /// The loop's monotonic clock.
  TimePoint time() const;

  template <class T = void>
  Future<T> create_future() {
    return detail::FutureAccess::adopt(new detail::FutureState<T>(this));
  }
  /// Schedules `coro` on this loop (its first step runs on this loop).
  template <class T>
  Task<T> create_task(Coro<T> coro, TaskOptions options) {
    check_open("create_task");
    return detail::spawn_on(this, std::move(coro), std::move(options));
  }
  /// Not a default argument: see weft::create_task (GCC 12 and aggregate temporaries).
  template <class T>
  Task<T> create_task(Coro<T> coro) {
    return create_task(std::move(coro), TaskOptions{});
  }
  /// Any other awaitable (`loop.create_task(q.get())`) as a task of its own.
  template <detail::TaskableAwaitable A>
  Task<detail::await_value_t<A>> create_task(A awaitable, TaskOptions options) {
    return create_task(detail::as_coro(std::move(awaitable)), std::move(options));
  }
  template <detail::TaskableAwaitable A>
  Task<detail::await_value_t<A>> create_task(A awaitable) {
    return create_task(detail::as_coro(std::move(awaitable)), TaskOptions{});
  }

  /// Runs the loop until `coro` (wrapped in a pinned task) is done; returns
  /// its value or rethrows its exception (LOOP-09).
  /// @throws RuntimeError if the loop is closed, already running, or stopped
  ///         before the task finished (LOOP-11, LOOP-12).
  template <class T>
  T run_until_complete(Coro<T> coro) {
    check_open("run_until_complete");
    check_not_running("run_until_complete");
    Task<T> task = create_task(std::move(coro), TaskOptions{.name = {}, .pinned = true});
    return run_until_complete(Future<T>(task));
  }
  template <class T>
  T run_until_complete(Future<T> future) {
    // LOOP-10: a future (or task) bound to another loop cannot be run here.
    detail::FutureState<T>* state = detail::FutureAccess::state(future);
    if (state->loop() != this && state->loop() != nullptr)
      throw ValueError("run_until_complete: the future belongs to a different loop");
    run_until_done(*state);
    state->check_result();
    if constexpr (!std::is_void_v<T>) return std::move(state->value_ref());
  }
  void run_forever();
  /// Stops after the current batch of callbacks (LOOP-08); from any thread.
  void stop();
  bool is_running() const;
  /// Idempotent; later run_* calls raise RuntimeError. @throws RuntimeError if running.
  void close();
  bool is_closed() const;

  /// Runs fn() on `executor` (null: the default executor) and returns a future
  /// for its value. Defined in <weft/offload.hpp>.
  template <class F>
  auto run_in_executor(Executor* executor, F fn);
  void set_default_executor(std::shared_ptr<Executor> executor);
  /// The default executor, created on first use.
  std::shared_ptr<Executor> default_executor();

  /// Calls `cb` on this loop whenever `fd` is readable / writable, until removed.
  /// From another thread, add_* and remove_* are queued to the loop and take
  /// effect asynchronously (remove_* then returns true); close an fd only on
  /// its loop's thread, after removing it.
  void add_reader(int fd, Callback cb);
  bool remove_reader(int fd);
  void add_writer(int fd, Callback cb);
  bool remove_writer(int fd);

  /// The options the loop was made with, every switch resolved
  /// (<weft/loop_options.hpp>); set_debug changes get_debug(), not these.
  const LoopOptions& options() const noexcept;
  void set_debug(bool enabled);
  bool get_debug() const;
  void set_slow_callback_duration(Duration d);
  Duration slow_callback_duration() const;
  /// An empty handler restores the default (log to stderr).
  void set_exception_handler(ExceptionHandler handler);
  void call_exception_handler(const ExceptionContext& context);
  void default_exception_handler(const ExceptionContext& context);

 private:
  friend struct detail::LoopAccess;  // executor/src/loop_impl.hpp
  /// A worker's loop (detail::LoopAccess::make).
  explicit EventLoop(std::unique_ptr<detail::LoopImpl> impl);
  void run_until_done(detail::FutureBase& future);
  void check_open(const char* what) const;
  void check_not_running(const char* what) const;

  std::unique_ptr<detail::LoopImpl> impl_;
};

/// The loop of the worker running the calling code.
/// @throws RuntimeError outside a running loop.
EventLoop& get_running_loop();

}  // namespace weft

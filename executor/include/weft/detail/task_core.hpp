// TaskCore: the scheduling half of a task (the other half is its FutureState).
//
// State word (invariant 1 of docs/architecture.md), `sched_`:
//   idle      suspended, waiting for something; in no queue
//   scheduled in exactly one ready queue (local run queue, a worker's LIFO
//             slot, injector, a loop's ready list or inbox)
//   running   a worker is executing a step
//   notified  running, and woken meanwhile: re-queued when the step ends
//   done      finished; never queued again
// wake() moves idle->scheduled (and queues the task) or running->notified;
// any other state absorbs the wake. A notified task is queued again when its
// step ends, as a yield: at the back of the run queue, never in the LIFO slot
// (scheduler.hpp). Only the thread that dequeued the task
// moves scheduled->running, and only the running thread leaves running, so a
// task runs on one thread at a time, and a wake racing with the end of a step
// is never lost (notified re-queues it) nor doubled.
//
// Wake-ups are precise: a task is woken only by what it currently waits on
// (a future it registered with, its sleep timer, a yield, a foreign
// awaitable's bridge). Awaiters therefore resume the coroutine only after
// their target completed.
//
// Cancellation fields (must_cancel_, must_cancel_by_self_, cancel_message_,
// cancel_requests_, waiting_on_, wait_cancelled_, deliver_completed_wait_,
// name_) are guarded by cancel_lock_.
// Task::cancel from any thread either cancels waiting_on_ (which wakes the
// task with a cancellation) or sets must_cancel_, which the task's next await
// delivers as CancelledError (asyncio's _must_cancel / _fut_waiter protocol).
//
// Nothing taken is lost (where a cancellation meets a completion):
// - A body that returns normally while a cancellation from *another* thread
//   is pending finishes with its value: that request reached a step that was
//   already running, and is ordered after it (as asyncio orders a
//   call_soon_threadsafe(task.cancel)). Only a task that cancelled itself
//   during its last step ends cancelled with its value discarded (TASK-09).
// - end_wait_keeping_cancel() ends a wait whose target completed before the
//   cancellation could reach it: the outcome is delivered and the
//   cancellation waits for the next suspension. The composition functions use
//   it where the target is an internal future the caller could not read
//   afterwards (gather's, shield's, as_completed's).
// - request_cancel_after_completion() (a timeout's expiry) lets a wait whose
//   target already completed end with its outcome; the cancellation reaches
//   the next suspension (so an expiry is late by at most one step).
#pragma once

#include <weft/detail/context.hpp>
#include <weft/detail/runnable.hpp>
#include <weft/detail/spin_lock.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace weft {
class EventLoop;
namespace detail {

class CoroPromiseBase;
class FutureBase;
class Scheduler;
class TaskRegistry;

class TaskCore : public Runnable {
 public:
  enum State : std::uint8_t { kIdle, kScheduled, kRunning, kNotified, kDone };

  TaskCore(EventLoop* home, bool affine) noexcept;

  virtual FutureBase& as_future() noexcept = 0;
  /// The root coroutine's promise (the first frame of the await chain,
  /// call_graph.cpp); null once the task finished.
  virtual CoroPromiseBase* root_promise() const noexcept = 0;

  /// Makes the task runnable (any thread). See the state protocol above.
  void wake() noexcept;
  /// Runs one step; called only by the thread that dequeued the task.
  void run() final;

  /// Task::cancel (any thread).
  bool request_cancel(std::string message);
  /// A timeout's expiry (any thread): request_cancel, except that when the
  /// task waits on a target that has already completed (it is about to
  /// resume with that outcome), that wait ends normally and the cancellation
  /// is delivered at the next suspension.
  void request_cancel_after_completion(std::string message);
  int cancelling() const;
  int uncancel();

  // --- called by awaiters, on the task's own thread, during a step ---
  /// Records where the step suspended; `in_coro`: `h` is a Coro frame whose
  /// AwaitRecord says what it awaits (awaiters call suspend_at(),
  /// await_record.hpp, which sets both).
  void set_resume_point(std::coroutine_handle<> h, bool in_coro = false) noexcept {
    resume_point_ = h;
    resume_in_coro_ = in_coro;
  }
  /// The running task's root coroutine reached its final suspension
  /// (CoroPromiseBase::FinalAwaiter: only a root has no continuation, and
  /// only TaskCore::run resumes a root).
  static void root_returned() noexcept;
  /// The task now waits on `target` (null: not cancellable, e.g. a yield).
  /// A pending cancellation request is delivered to the target at once.
  void begin_wait(WaitTarget* target);
  /// Suspends the step (at the resume point just recorded) only to give the
  /// worker back (a yield): the task is queued again at once; end_wait() ends it.
  void yield_suspend();
  /// The wait is over: throws CancelledError if a cancellation is pending.
  void end_wait();
  /// The wait is over and its target completed: a pending cancellation is
  /// left for the next suspension instead of discarding that outcome.
  void end_wait_keeping_cancel() noexcept;

  std::string name() const;
  void set_name(std::string name);
  std::uint64_t id() const noexcept { return id_; }
  EventLoop* home() const noexcept { return home_; }
  bool affine() const noexcept { return affine_; }
  Context& context() noexcept { return context_; }
  State state() const noexcept { return sched_.load(std::memory_order_acquire); }
  bool started() const noexcept { return started_; }
  /// Where the last step suspended (call_graph.cpp reads it with the task's
  /// workers paused); in_coro as set_resume_point's.
  std::coroutine_handle<> resume_point() const noexcept { return resume_point_; }
  bool resume_in_coro() const noexcept { return resume_in_coro_; }

  // Registry links (the home loop's registry), guarded by the registry
  // shard's lock.
  TaskCore* registry_prev = nullptr;
  TaskCore* registry_next = nullptr;

 protected:
  ~TaskCore();
  /// The root coroutine finished (or, cancelled before its first step, never
  /// ran): move its outcome into the future and destroy the frame.
  virtual void finish_root(bool cancelled_before_start) = 0;
  /// Consumes a pending cancellation request (cancelled before its first step).
  bool take_must_cancel(std::string& message);
  /// The body returned normally: consumes a pending request and returns true
  /// only if the task requested it itself (TASK-09: it then ends cancelled);
  /// a request from another thread is ordered after the finished step.
  bool take_self_cancel(std::string& message);
  /// Destroys the root frame if it is still alive (teardown, or a state
  /// destroyed before its task ran).
  virtual void destroy_root() noexcept = 0;

  // Where the next step resumes: the root frame before the first step, then
  // the innermost frame at each suspension; null once the root returned or
  // was destroyed. So the root frame is alive exactly while it is non-null
  // (the derived state finds the root itself: no pointer to it is kept).
  std::coroutine_handle<> resume_point_;

 private:
  void schedule(bool yielded) noexcept;
  void finish(bool cancelled_before_start);

  // Layout: pointers first, then the one-byte fields packed together (an
  // idle task's size is what idle memory is made of).
  EventLoop* home_;  // its LoopImpl holds the scheduler and the registry
  Context context_;
  std::uint64_t id_;

  // Rarely set, so kept out of line: an idle task stays small.
  struct Cold {
    std::string cancel_message;
    std::string name;
  };
  Cold& cold();  // under cancel_lock_

  WaitTarget* waiting_on_ = nullptr;
  std::unique_ptr<Cold> cold_;
  int cancel_requests_ = 0;
  std::atomic<State> sched_{kIdle};
  bool started_ = false;
  bool resume_in_coro_ = false;
  bool affine_;
  mutable SpinLock cancel_lock_;
  bool must_cancel_ = false;
  bool must_cancel_by_self_ = false;
  bool wait_cancelled_ = false;          // waiting_on_ already took a cancellation
  bool deliver_completed_wait_ = false;  // end_wait lets this wait's outcome through

  friend class TaskRegistry;
  friend void launch_task(TaskCore* task, std::string name, std::optional<bool> eager);
  friend void abandon_task(TaskCore* task) noexcept;
};

void launch_task(TaskCore* task, std::string name, std::optional<bool> eager);
/// Destroys a task that will never finish (runtime teardown): its frame goes,
/// its future ends cancelled. Only with every worker stopped.
void abandon_task(TaskCore* task) noexcept;

/// Task states alive in this process, over every runtime and loop: each
/// TaskCore constructed and not yet destroyed (a task not finished, or a
/// finished one whose handle or a waiter still holds it). For leak checks
/// (tests/support): exact once the threads that created and destroyed tasks
/// are joined or otherwise synchronised with the caller. Any thread.
std::int64_t live_task_count() noexcept;

/// The steady clock in milliseconds, modulo 2^32 (a task's age, coro.hpp's born_ms_).
std::uint32_t steady_ms32() noexcept;

/// The task running on this thread, or null.
TaskCore* current_task_core() noexcept;
/// The running task, or RuntimeError naming `what` (an await outside a task).
TaskCore& require_task(const char* what);

}  // namespace detail
}  // namespace weft

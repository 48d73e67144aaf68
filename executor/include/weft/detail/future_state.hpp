// FutureBase / FutureState<T>: the shared state behind Future<T> and Task<T>.
//
// Protocol (invariant 2 of docs/architecture.md):
// - status_ moves from pending to result / exception / cancelled exactly
//   once, under lock_, after the value or exception has been stored; it is
//   published with release and read lock-free with acquire, so a reader that
//   sees "done" sees the stored outcome. The outcome is never written again
//   (except that awaiting an rvalue handle moves the value out, by contract).
// - The waiter list (task waiters and done callbacks, in registration order)
//   is guarded by lock_. Completion detaches the whole list under the lock and
//   notifies it outside the lock: a task waiter is woken (TaskCore::wake), a
//   callback is scheduled on the loop that registered it. Nothing runs inline.
// - A TaskWaiterNode lives inside the awaiting coroutine's frame. The
//   completer reads a node's fields before waking its task and never touches it
//   after, because the woken task may resume at once on another thread and
//   destroy the node.
// - Lock order: a task's cancellation lock may be held while taking a
//   future's lock (Task::cancel cancels what the task awaits); a future's lock
//   is never held while taking any other lock.
#pragma once

#include <weft/detail/frame_allocator.hpp>
#include <weft/detail/runnable.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/errors.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace weft {

class EventLoop;
using CallbackId = std::uint64_t;

namespace detail {

class TaskCore;
class FutureBase;

enum class FutureStatus : std::uint8_t { pending, result, exception, cancelled };

struct WaiterNode {
  WaiterNode* prev = nullptr;
  WaiterNode* next = nullptr;
  bool is_task = true;
};

struct TaskWaiterNode : WaiterNode {
  // FutureAwaiter's own state, in the padding behind is_task (8 bytes less
  // in every coroutine frame suspended on a future).
  bool suspended = false;
  bool yielded = false;
  TaskCore* task = nullptr;
};
static_assert(sizeof(TaskWaiterNode) == 4 * sizeof(void*));

/// A done callback: a waiter node until the future completes, then a Runnable
/// on the registering loop's ready queue. Holds a reference to its future
/// from completion until it has run.
struct CallbackNode final : WaiterNode, Runnable, FrameAllocated {
  std::function<void(FutureBase&)> fn;
  EventLoop* loop = nullptr;
  FutureBase* owner = nullptr;
  CallbackId id = 0;
  void run() override;
};

/// The loop running on this thread, or null.
EventLoop* current_loop() noexcept;
/// Queue `r` on `loop` (call_soon semantics, from any thread); with a null
/// loop, run it at once on this thread.
void schedule_on_loop(EventLoop* loop, Runnable* r) noexcept;
/// Report an exception nobody retrieved (FUT-11) through the loop's handler
/// when on that loop's thread, else to stderr.
void report_unretrieved(EventLoop* loop, const std::exception_ptr& e, const std::string& what_kind);

class FutureBase : public WaitTarget {
 public:
  explicit FutureBase(EventLoop* loop, bool is_task = false) noexcept
      : loop_(loop), is_task_(is_task) {}
  FutureBase(const FutureBase&) = delete;
  FutureBase& operator=(const FutureBase&) = delete;
  virtual ~FutureBase();

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // ordering: acq_rel so that the deleting thread sees every other owner's writes.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  FutureStatus status() const noexcept { return status_.load(std::memory_order_acquire); }
  bool done() const noexcept { return status() != FutureStatus::pending; }
  bool cancelled() const noexcept { return status() == FutureStatus::cancelled; }
  bool is_task() const noexcept { return is_task_; }
  /// A task's state: its scheduling half (await chains show the task).
  virtual const TaskCore* task_core() const noexcept { return nullptr; }
  EventLoop* loop() const noexcept { return loop_; }

  /// Future: completes it as cancelled. Task: requests cancellation.
  virtual bool cancel(std::string message);
  bool cancel_wait(const std::string& message) override { return cancel(message); }

  /// FUT-02/04/05: InvalidStateError while pending, CancelledError if
  /// cancelled, else the stored exception (null on success). Marks it retrieved.
  std::exception_ptr exception();
  /// Throws unless the future holds a result (same errors as above, and the
  /// stored exception itself). Marks an exception retrieved.
  void check_result();

  bool set_exception_ptr(std::exception_ptr e);
  bool set_cancelled(std::string message);

  /// Registers a task waiter; false (not registered) if already done.
  bool add_task_waiter(TaskWaiterNode* node) noexcept;
  /// Unlinks a node that is still registered (the future is pending).
  void remove_waiter(WaiterNode* node) noexcept;
  CallbackId add_done_callback(std::function<void(FutureBase&)> fn);
  std::size_t remove_done_callback(CallbackId id);

 protected:
  /// Completes with `status`; `store()` runs under the lock before the status
  /// is published. False if the future was already done.
  template <class Store>
  bool complete(FutureStatus status, Store&& store) {
    WaiterNode* waiters;
    {
      lock_.lock();
      if (status_.load(std::memory_order_relaxed) != FutureStatus::pending) {
        lock_.unlock();
        return false;
      }
      try {
        store();
      } catch (...) {
        lock_.unlock();
        throw;
      }
      // ordering: release publishes the stored outcome to lock-free readers.
      status_.store(status, std::memory_order_release);
      waiters = head_;
      head_ = nullptr;
      lock_.unlock();
    }
    notify(waiters);
    return true;
  }

  // Written once, before the cancelled status is published; null when empty.
  std::unique_ptr<std::string> cancel_message_;

 private:
  void notify(WaiterNode* first) noexcept;
  void link(WaiterNode* node) noexcept;
  void unlink(WaiterNode* node) noexcept;

  // Layout: pointers first, the small fields packed behind them.
  EventLoop* loop_;
  // The waiter list, guarded by lock_: linked by next from head_ to the last
  // node (whose next is null); head_->prev is the last node (no tail pointer:
  // 8 bytes less in every future and task).
  WaiterNode* head_ = nullptr;
  std::exception_ptr exception_;
  std::atomic<std::uint32_t> refs_{1};
  std::uint32_t next_callback_id_ = 0;  // guarded by lock_
  std::atomic<FutureStatus> status_{FutureStatus::pending};
  std::atomic<bool> retrieved_{false};
  bool is_task_;

 protected:
  SpinLock lock_;
};

template <class T>
class FutureState : public FutureBase {
 public:
  using FutureBase::FutureBase;
  ~FutureState() override {
    if (status() == FutureStatus::result) value_ptr()->~T();
  }
  template <class U>
  bool set_value(U&& v) {
    return complete(FutureStatus::result, [&] { ::new (&storage_) T(std::forward<U>(v)); });
  }
  /// The stored value after check_result() succeeded.
  T& value_ref() noexcept { return *value_ptr(); }

 private:
  T* value_ptr() noexcept { return std::launder(reinterpret_cast<T*>(&storage_)); }
  alignas(T) unsigned char storage_[sizeof(T)];
};

template <>
class FutureState<void> : public FutureBase {
 public:
  using FutureBase::FutureBase;
  bool set_value() {
    return complete(FutureStatus::result, [] {});
  }
};

}  // namespace detail
}  // namespace weft

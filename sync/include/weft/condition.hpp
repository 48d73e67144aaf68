// Condition (asyncio.Condition): wait for a notification while sharing a Lock.
//
// Usable by tasks on any worker at once. Condition(lock) shares `lock` (COND-06);
// Condition() owns its own. As in asyncio the lock has no owner, so "holding
// the lock" means lock.locked().
//
// wait(): links the task on the notify list, then releases the lock (in that
// order, so a notify from whoever takes the lock next always finds it), waits
// for notify(), and re-acquires the lock before returning, even when
// cancelled (COND-05): a CancelledError leaves wait() only with the lock held,
// and it is the same exception object, message included. A waiter that was
// notified and then ends in CancelledError passes its notification on to the
// next waiter, so no wake-up is lost (COND-06).
//
// Invariants: the notify list and its nodes are guarded by `mutex_`; notify
// grants nodes under it and wakes their tasks after unlocking. The lock's own
// state is separate (detail/permit_core.hpp); `mutex_` is never held while
// taking the lock's mutex or the reverse.
//
// Deviations (docs/api.md, sync): acquire() returns detail::PermitAcquire (see
// lock.hpp); wait_for(pred) returns pred's value (Coro<R>), as asyncio does.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/sync_waiter.hpp>
#include <weft/errors.hpp>
#include <weft/lock.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

namespace weft {

class Condition {
 public:
  /// Shares `lock` (which must outlive the condition), or owns a new Lock.
  explicit Condition(Lock* lock = nullptr)
      : owned_(lock ? nullptr : std::make_unique<Lock>()),
        lock_(lock ? lock : owned_.get()),
        waiters_(mutex_) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  /// The lock's acquire(): `co_await cond.acquire();`.
  detail::PermitAcquire acquire() noexcept { return lock_->acquire(); }
  /// @throws RuntimeError if the lock is not held.
  void release() { lock_->release(); }
  bool locked() const noexcept { return lock_->locked(); }
  /// `auto g = co_await cond.scoped();` holds the lock until g goes.
  Coro<LockGuard> scoped() { return lock_->scoped(); }

  /// Releases the lock, waits for a notify, re-acquires the lock. Inside a task.
  /// @throws RuntimeError("cannot wait on un-acquired lock") if the lock is not
  /// held; CancelledError if cancelled (the lock is held again by then).
  Coro<void> wait() {
    if (!locked()) throw RuntimeError("cannot wait on un-acquired lock");
    bool notified = false;
    std::exception_ptr error;
    try {
      co_await WaitAwaiter(this, &notified);
    } catch (const CancelledError&) {
      error = std::current_exception();
    }
    for (;;) {  // must re-acquire even when cancelled
      try {
        co_await lock_->acquire();
        break;
      } catch (const CancelledError&) {
        error = std::current_exception();  // asyncio re-raises the most recent one
      }
    }
    if (error) {
      if (notified) notify_unchecked(1);  // pass the notification on
      std::rethrow_exception(error);
    }
  }

  /// Waits until pred() is truthy and returns its value. pred runs with the
  /// lock held (except the first check, which needs no lock, COND-04).
  /// @throws RuntimeError if pred() is false and the lock is not held;
  /// CancelledError as wait().
  template <class P>
  Coro<std::decay_t<std::invoke_result_t<P&>>> wait_for(P pred) {
    auto result = pred();
    while (!result) {
      co_await wait();
      result = pred();
    }
    co_return result;
  }

  /// Wakes the first n waiters (FIFO). Any thread, with the lock held.
  /// @throws RuntimeError("cannot notify on un-acquired lock") otherwise.
  void notify(std::size_t n = 1) {
    if (!locked()) throw RuntimeError("cannot notify on un-acquired lock");
    notify_unchecked(n);
  }
  /// Wakes every waiter. @throws RuntimeError as notify().
  void notify_all() { notify(std::numeric_limits<std::size_t>::max()); }

 private:
  class WaitAwaiter {
   public:
    using weft_native_awaitable = void;
    WaitAwaiter(Condition* c, bool* notified) noexcept : cond_(c), notified_(notified) {}
    WaitAwaiter(WaitAwaiter&& other) noexcept : cond_(other.cond_), notified_(other.notified_) {}
    WaitAwaiter& operator=(WaitAwaiter&&) = delete;
    void weft_describe_await(AwaitTarget& out) const noexcept {
      out.kind = AwaitKind::condition;
      out.object = cond_;
    }
    bool await_ready() const noexcept { return false; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      detail::TaskCore& task = detail::require_task("Condition::wait");
      detail::suspend_at(task, h, *this);
      {
        detail::SyncLockGuard guard(cond_->mutex_);
        cond_->waiters_.push_back(node_, task);
      }
      try {
        cond_->lock_->release();
      } catch (...) {
        // Not held after all (released by another task meanwhile): undo the
        // link (a notify may have granted it already: then pass that on).
        if (!node_.withdraw()) cond_->notify_unchecked(1);
        throw;
      }
      task.begin_wait(&node_);
    }
    void await_resume() {
      *notified_ = node_.state() == detail::SyncWaiter::kGranted;
      detail::finish_wait(node_, []() noexcept {});
    }

   private:
    Condition* cond_;
    bool* notified_;  // set when resumed: did a notify choose this waiter?
    detail::SyncWaiter node_;
  };

  void notify_unchecked(std::size_t n) noexcept {
    detail::WakeChain chain;  // destroyed after the guard: wakes outside the mutex
    detail::SyncLockGuard guard(mutex_);
    for (std::size_t i = 0; i < n && waiters_.grant_front(chain); ++i) {
    }
  }

  std::unique_ptr<Lock> owned_;
  Lock* lock_;
  detail::SyncMutex mutex_;
  detail::WaiterList waiters_;
};

}  // namespace weft

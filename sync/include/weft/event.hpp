// Event (asyncio.Event): a flag that tasks can wait for.
//
// Usable from any thread. set() releases every current waiter, in FIFO order
// of their wait() calls; a released waiter returns even if clear() (and even
// set() again) follows before it runs (EVT-03). wait() on a set event returns
// without suspending (one atomic load).
//
// Invariants: `flag_` is written only under `mutex_` and read lock-free;
// waiters are linked only under `mutex_` after re-checking the flag there, so
// a set() either sees a waiter in the list or the waiter sees the flag.
// ordering: set() stores the flag with release; the lock-free load in wait()
// and is_set() is acquire, so a task that sees the event set sees what the
// setter wrote before set().
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/coop.hpp>
#include <weft/detail/sync_waiter.hpp>

#include <atomic>
#include <coroutine>

namespace weft {

class Event {
 public:
  Event() noexcept : waiters_(mutex_) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// Sets the flag and wakes every waiter. Any thread; never throws.
  void set() noexcept {
    detail::WakeChain chain;  // destroyed after the guard: wakes outside the mutex
    detail::SyncLockGuard guard(mutex_);
    if (flag_.load(std::memory_order_relaxed)) return;
    flag_.store(true, std::memory_order_release);
    while (waiters_.grant_front(chain)) {
    }
  }
  /// Clears the flag; later wait() calls block. Any thread.
  void clear() noexcept {
    detail::SyncLockGuard guard(mutex_);
    flag_.store(false, std::memory_order_relaxed);
  }
  bool is_set() const noexcept { return flag_.load(std::memory_order_acquire); }

  /// Returns once the flag is set (at once if it is). Inside a task.
  /// @throws CancelledError if the task is cancelled while waiting (the
  /// waiter is then removed, EVT-04).
  Coro<void> wait() { co_await Awaiter(this); }

 private:
  class Awaiter {
   public:
    using weft_native_awaitable = void;
    explicit Awaiter(Event* e) noexcept : event_(e) {}
    Awaiter(Awaiter&& other) noexcept : event_(other.event_) {}
    Awaiter& operator=(Awaiter&&) = delete;
    void weft_describe_await(AwaitTarget& out) const noexcept {
      out.kind = AwaitKind::event;
      out.object = event_;
    }
    bool await_ready() noexcept { return event_->is_set() && detail::coop_take(); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      detail::TaskCore& task = detail::require_task("Event::wait");
      {
        detail::SyncLockGuard guard(event_->mutex_);
        if (!event_->flag_.load(std::memory_order_relaxed)) {
          detail::suspend_at(task, h, *this);
          event_->waiters_.push_back(node_, task);
          linked_ = true;
        }
      }
      if (linked_) {
        task.begin_wait(&node_);
        return true;
      }
      if (detail::coop_take()) return false;
      // Set, but the step's budget is spent (detail/coop.hpp): yield first.
      yielded_ = &task;
      detail::suspend_at(task, h, *this);
      task.yield_suspend();
      return true;
    }
    void await_resume() {
      if (detail::TaskCore* task = std::exchange(yielded_, nullptr)) task->end_wait();
      if (linked_) detail::finish_wait(node_, []() noexcept {});
    }

   private:
    Event* event_;
    detail::SyncWaiter node_;
    bool linked_ = false;
    detail::TaskCore* yielded_ = nullptr;
  };

  std::atomic<bool> flag_{false};
  detail::SyncMutex mutex_;
  detail::WaiterList waiters_;
};

}  // namespace weft

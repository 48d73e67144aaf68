// PermitCore: the counting core behind Lock, Semaphore and BoundedSemaphore
// (internal), and PermitAcquire, the awaitable their acquire() returns.
//
// State word `state_` = permits << 1 | W. W ("busy") is set exactly while
// the waiter list is non-empty or a granted waiter has not resumed yet
// (`pending_` > 0): as in asyncio, a woken waiter still counts as waiting
// until it runs, so newcomers queue behind it (LOCK-02, SEM-03).
// - Fast paths (no mutex, one atomic RMW): acquire is a CAS that takes a
//   permit when W is clear and permits > 0; release is a CAS that adds a
//   permit when W is clear. Both fail whenever W is set, so while W is set the
//   word changes only under the mutex.
// - Slow acquire (mutex held): take a permit if W is clear and one is free,
//   else set W and link the node.
// - Slow release (mutex held, W set): add the permit and grant it straight to
//   the first waiter (permits stay 0, pending_ + 1). A granted waiter, when it
//   resumes, drops pending_, grants any permits left to the next waiters (a
//   release may have come while it was pending) and clears W when nobody is
//   left. FIFO order is the list order.
// - A waiter cancelled while linked is unlinked by cancel_wait; one granted
//   and then cancelled resumes as above and gives its permit back with
//   release(), which passes it on (LOCK-04, SEM-04).
// ordering: a successful acquire CAS is acquire and a release CAS is release,
// so the critical sections of successive owners are ordered; a handed-off
// permit is ordered by the mutex and the waker's TaskCore::wake (acq_rel).
#pragma once

#include <weft/await_target.hpp>
#include <weft/coro.hpp>
#include <weft/detail/give_back.hpp>
#include <weft/detail/sync_waiter.hpp>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>

namespace weft::detail {

class PermitCore {
 public:
  explicit PermitCore(std::uint64_t permits) noexcept
      : state_(permits << 1), waiters_(mutex_, &on_cancel, this) {}
  PermitCore(const PermitCore&) = delete;
  PermitCore& operator=(const PermitCore&) = delete;

  /// Takes a permit without waiting; false if none is free or W is set.
  bool try_acquire() noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while ((s & 1) == 0 && s >= 2) {
      // ordering: acquire pairs with the release CAS of the previous owner.
      if (state_.compare_exchange_weak(s, s - 2, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return true;
    }
    return false;
  }

  /// Takes a permit, or links `node` for `task` (then the caller must
  /// begin_wait and suspend). True if a permit was taken.
  bool acquire_or_link(SyncWaiter& node, TaskCore& task) noexcept {
    SyncLockGuard guard(mutex_);
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & 1) == 0 && s >= 2) {
        if (state_.compare_exchange_weak(s, s - 2, std::memory_order_acquire,
                                         std::memory_order_relaxed))
          return true;
        continue;
      }
      // ordering: relaxed; releasers that see W take the mutex we hold.
      if ((s & 1) || state_.compare_exchange_weak(s, s | 1, std::memory_order_relaxed)) {
        waiters_.push_back(node, task);
        return false;
      }
    }
  }

  /// A granted waiter resumed (its own task, before it decides to keep or
  /// give back the permit): it no longer blocks newcomers.
  void granted_waiter_resumed() noexcept {
    WakeChain chain;  // destroyed after the guard: wakes outside the mutex
    SyncLockGuard guard(mutex_);
    --pending_;
    settle_locked(state_.load(std::memory_order_relaxed) >> 1, chain);
  }

  /// Returns a permit: to the first waiter if any, else to the count. With
  /// `limit` != 0, a release that would raise the count above `limit` changes
  /// nothing and returns false. `guess` is the state the caller expects (0 for
  /// a held Lock), saving a load on the fast path.
  bool release(std::uint64_t limit, std::uint64_t guess) noexcept {
    std::uint64_t s = guess;
    while ((s & 1) == 0) {
      if (limit != 0 && (s >> 1) >= limit) return false;
      // ordering: release publishes the critical section to the next acquirer.
      if (state_.compare_exchange_weak(s, s + 2, std::memory_order_release,
                                       std::memory_order_relaxed))
        return true;
    }
    return release_slow(limit);
  }

  /// acquire() would wait: no permit free, or somebody waits (asyncio's locked()).
  bool locked() const noexcept {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    return s < 2 || (s & 1);
  }
  std::uint64_t state_guess() const noexcept { return state_.load(std::memory_order_relaxed); }

 private:
  bool release_slow(std::uint64_t limit) noexcept {
    WakeChain chain;  // destroyed after the guard: wakes outside the mutex
    SyncLockGuard guard(mutex_);
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      std::uint64_t permits = s >> 1;
      if (limit != 0 && permits >= limit) return false;
      if (s & 1) {  // W set: nobody else writes the word now
        settle_locked(permits + 1, chain);
        return true;
      }
      if (state_.compare_exchange_weak(s, s + 2, std::memory_order_release,
                                       std::memory_order_relaxed))
        return true;
    }
  }
  /// With W set and the mutex held: grants `permits` to waiters in order,
  /// then stores the word, clearing W when nobody waits or is pending.
  void settle_locked(std::uint64_t permits, WakeChain& chain) noexcept {
    while (permits > 0 && waiters_.grant_front(chain)) {
      --permits;
      ++pending_;
    }
    bool busy = !waiters_.empty() || pending_ > 0;
    // ordering: release publishes the critical section to a later fast acquirer.
    state_.store(permits << 1 | (busy ? 1 : 0), std::memory_order_release);
  }
  static void on_cancel(void* self) noexcept {
    // Permits left over while a granted waiter is pending are granted when it
    // resumes; here only W may need clearing.
    auto* core = static_cast<PermitCore*>(self);
    // ordering: relaxed; W is set, so nobody else writes the word now.
    if (core->waiters_.empty() && core->pending_ == 0)
      core->state_.fetch_and(~std::uint64_t{1}, std::memory_order_relaxed);
  }

  std::atomic<std::uint64_t> state_;
  SyncMutex mutex_;
  WaiterList waiters_;
  std::size_t pending_ = 0;  // granted waiters not resumed yet; guarded by mutex_
};

/// What Lock::acquire(), Semaphore::acquire() and Condition::acquire() return:
/// `co_await lock.acquire();` takes the lock (or a permit), suspending the
/// task while none is free. A free permit is taken without suspending (one
/// CAS). Cancelling the waiting task raises CancelledError at the co_await and
/// leaves nothing held. Awaitable once, inside a task. Composes as it is
/// (`weft::wait_for(lock.acquire(), 1s)`); converts to Coro<void> too.
class [[nodiscard]] PermitAcquire {
 public:
  using weft_native_awaitable = void;

  /// `kind` and `owner` (the Lock or Semaphore) are what await chains show.
  explicit PermitAcquire(PermitCore* core, AwaitKind kind = AwaitKind::semaphore,
                         const void* owner = nullptr) noexcept
      : core_(core), owner_(owner ? owner : core), kind_(kind) {}
  PermitAcquire(PermitAcquire&& other) noexcept
      : core_(other.core_), owner_(other.owner_), kind_(other.kind_) {}
  PermitAcquire& operator=(PermitAcquire&&) = delete;

  // Not a cooperative-budget point (detail/coop.hpp): yielding while holding
  // the permit made every other acquirer queue up behind a task that was not
  // running (a convoy: 10x slower under contention), and yielding without it
  // would need the acquire to be retried after the yield.
  bool await_ready() noexcept { return core_->try_acquire(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    TaskCore& task = require_task("acquire()");
    suspend_at(task, h, *this);
    if (core_->acquire_or_link(node_, task)) return false;
    linked_ = true;
    task.begin_wait(&node_);
    return true;
  }
  void await_resume() {
    if (!linked_) return;
    linked_ = false;
    if (node_.state() == SyncWaiter::kGranted) core_->granted_waiter_resumed();
    finish_wait(node_, [this]() noexcept { core_->release(0, core_->state_guess()); });
  }

  void weft_describe_await(AwaitTarget& out) const noexcept {
    out.kind = kind_;
    out.object = owner_;
  }

  /// The same acquisition as a Coro (allocates a frame).
  operator Coro<void>() && { return as_coro(core_); }

  /// How a composition that ran this acquisition as its own task releases
  /// the permit nobody received (detail/give_back.hpp).
  GiveBack weft_give_back() const noexcept { return GiveBack{&give_back_permit, core_}; }

 private:
  static Coro<void> as_coro(PermitCore* core) { co_await PermitAcquire(core); }
  static void give_back_permit(void* core, FutureBase&) noexcept {
    auto* c = static_cast<PermitCore*>(core);
    c->release(0, c->state_guess());
  }

  PermitCore* core_;
  const void* owner_;
  AwaitKind kind_;
  SyncWaiter node_;
  bool linked_ = false;
};

}  // namespace weft::detail

// Lock (asyncio.Lock) and LockGuard, its `async with` guard.
//
// Usable by tasks on any worker at once. asyncio locks have no owner: any
// task may release a lock another task acquired (LOCK-05), and a task may
// acquire on one thread and release on another after migrating. Waiters get
// the lock in FIFO order and a release hands it straight to the first waiter,
// so a newcomer never overtakes a waiter already woken (LOCK-02). Uncontended
// acquire and release are one atomic CAS each; see detail/permit_core.hpp for
// the protocol.
//
// Deviation (docs/api.md, sync): acquire() returns detail::PermitAcquire, an
// awaitable used exactly like the Coro<void> (`co_await lock.acquire();`)
// that avoids a coroutine frame per call. It composes as it is:
// `co_await weft::wait_for(lock.acquire(), 1s);` (a timed-out acquire never
// leaves the lock held), `weft::create_task(lock.acquire())`. An acquire
// that `gather` or `shield` ran as its own task and whose result they will
// not deliver (they raised, or were cancelled) releases the lock again.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/permit_core.hpp>
#include <weft/errors.hpp>

#include <utility>

namespace weft {

class Lock;

/// Holds a Lock (or a Condition's lock) and releases it on destruction.
/// Movable, not copyable. Not thread-safe itself (one owner at a time).
class [[nodiscard]] LockGuard {
 public:
  LockGuard() noexcept = default;
  /// Adopts `lock`, which the caller has acquired.
  explicit LockGuard(Lock* lock) noexcept : lock_(lock) {}
  LockGuard(LockGuard&& other) noexcept : lock_(std::exchange(other.lock_, nullptr)) {}
  LockGuard& operator=(LockGuard&& other) noexcept {
    if (this != &other) {
      reset();
      lock_ = std::exchange(other.lock_, nullptr);
    }
    return *this;
  }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  /// Releases the lock. The lock must still be held: a lock released behind
  /// the guard's back makes this release fail, and the destructor terminates.
  ~LockGuard() { reset(); }

  /// Releases now (idempotent). @throws RuntimeError if the lock was released meanwhile.
  void release();
  /// True while the guard still has to release.
  bool owns_lock() const noexcept { return lock_ != nullptr; }

 private:
  void reset() noexcept;
  Lock* lock_ = nullptr;
};

class Lock {
 public:
  Lock() noexcept : core_(1) {}
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// `co_await lock.acquire();` waits until the lock is free and takes it.
  /// Any thread, inside a task. Throws CancelledError if the task is
  /// cancelled while waiting (the lock is then not held by it).
  detail::PermitAcquire acquire() noexcept {
    return detail::PermitAcquire(&core_, AwaitKind::lock, this);
  }

  /// Unlocks, handing the lock to the first waiter if any. Any thread, any
  /// task (no owner). @throws RuntimeError("Lock is not acquired.") if unlocked.
  void release() {
    // guess 0: "locked, nobody waiting", the common state of a held lock.
    if (!core_.release(1, 0)) throw RuntimeError("Lock is not acquired.");
  }

  /// True while held (also while being handed to a woken waiter).
  bool locked() const noexcept { return core_.locked(); }

  /// `auto g = co_await lock.scoped();` acquires and returns a guard that
  /// releases on destruction (asyncio's `async with lock`).
  Coro<LockGuard> scoped() {
    co_await acquire();
    co_return LockGuard(this);
  }

 private:
  detail::PermitCore core_;
};

inline void LockGuard::release() {
  if (Lock* l = std::exchange(lock_, nullptr)) l->release();
}

inline void LockGuard::reset() noexcept {
  if (Lock* l = std::exchange(lock_, nullptr)) l->release();  // throws only on misuse: terminates
}

}  // namespace weft

// Semaphore, BoundedSemaphore (asyncio's) and SemaphoreGuard.
//
// Usable by tasks on any worker at once. acquire() takes a permit or waits in
// FIFO order; release() hands a permit straight to the first waiter (the
// count stays 0, SEM-02), so a task that releases and re-acquires queues
// behind the waiters already there (no barging, SEM-03). Uncontended acquire
// and release are one atomic CAS each; see detail/permit_core.hpp.
//
// Deviations (docs/api.md, sync): acquire() returns detail::PermitAcquire (see
// lock.hpp); the constructors take a signed count so that a negative value
// can be rejected with ValueError as asyncio does (SEM-01).
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/permit_core.hpp>
#include <weft/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace weft {

class Semaphore;

/// Holds one permit of a Semaphore and releases it on destruction. Movable.
class [[nodiscard]] SemaphoreGuard {
 public:
  SemaphoreGuard() noexcept = default;
  /// Adopts one permit of `sem`, which the caller has acquired.
  explicit SemaphoreGuard(Semaphore* sem) noexcept : sem_(sem) {}
  SemaphoreGuard(SemaphoreGuard&& other) noexcept : sem_(std::exchange(other.sem_, nullptr)) {}
  SemaphoreGuard& operator=(SemaphoreGuard&& other) noexcept {
    if (this != &other) {
      reset();
      sem_ = std::exchange(other.sem_, nullptr);
    }
    return *this;
  }
  SemaphoreGuard(const SemaphoreGuard&) = delete;
  SemaphoreGuard& operator=(const SemaphoreGuard&) = delete;
  /// Releases the permit (a BoundedSemaphore over-released behind the
  /// guard's back makes this fail, and the destructor terminates).
  ~SemaphoreGuard() { reset(); }

  /// Releases now (idempotent). @throws ValueError as BoundedSemaphore::release.
  void release();
  bool owns_permit() const noexcept { return sem_ != nullptr; }

 private:
  void reset() noexcept;
  Semaphore* sem_ = nullptr;
};

class Semaphore {
 public:
  /// @throws ValueError("initial value must be >= 0") for a negative value.
  explicit Semaphore(std::int64_t value = 1) : core_(checked(value)) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  virtual ~Semaphore() = default;

  /// `co_await sem.acquire();` takes a permit, waiting (FIFO) while none is
  /// free. Any thread, inside a task. CancelledError if cancelled while
  /// waiting; no permit is then held.
  detail::PermitAcquire acquire() noexcept {
    return detail::PermitAcquire(&core_, AwaitKind::semaphore, this);
  }

  /// Returns a permit (to the first waiter if any). Any thread.
  /// Semaphore: never throws. BoundedSemaphore: see there.
  virtual void release() { core_.release(0, core_.state_guess()); }

  /// True when acquire() would wait: no permit free, or a waiter is queued.
  bool locked() const noexcept { return core_.locked(); }

  /// `auto g = co_await sem.scoped();` acquires; the guard releases.
  Coro<SemaphoreGuard> scoped() {
    co_await acquire();
    co_return SemaphoreGuard(this);
  }

 protected:
  static std::uint64_t checked(std::int64_t value) {
    if (value < 0) throw ValueError("initial value must be >= 0");
    return static_cast<std::uint64_t>(value);
  }
  detail::PermitCore core_;
};

/// A Semaphore whose release() above the initial value is an error.
class BoundedSemaphore : public Semaphore {
 public:
  /// @throws ValueError for a negative value.
  explicit BoundedSemaphore(std::int64_t value = 1)
      : Semaphore(value), bound_(static_cast<std::uint64_t>(value)) {}

  /// @throws ValueError("BoundedSemaphore released too many times") if the
  /// count would exceed the initial value (nothing changes then).
  void release() override {
    if (bound_ == 0 || !core_.release(bound_, core_.state_guess()))
      throw ValueError("BoundedSemaphore released too many times");
  }

 private:
  std::uint64_t bound_;
};

inline void SemaphoreGuard::release() {
  if (Semaphore* s = std::exchange(sem_, nullptr)) s->release();
}

inline void SemaphoreGuard::reset() noexcept {
  if (Semaphore* s = std::exchange(sem_, nullptr))
    s->release();  // throws only on misuse: terminates
}

}  // namespace weft

// SpinLock: a test-and-test-and-set lock for critical sections of a few dozen
// instructions (a future's waiter list, a task's cancellation fields, a sync
// primitive's bookkeeping). It is never held across a wake-up of a task, a
// callback, an allocation-heavy operation or a syscall.
//
// It spins briefly, then yields the CPU: workers may outnumber cores, and a
// holder preempted inside its few instructions must get to run, which pure
// spinning would delay by a whole time slice.
#pragma once

#include <weft/detail/cpu_relax.hpp>

#include <sched.h>

#include <atomic>

namespace weft::detail {

class SpinLock {
 public:
  void lock() noexcept {
    // ordering: acquire on success pairs with the release in unlock().
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_slow();
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  void lock_slow() noexcept {
    for (unsigned spins = 0;; ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64)
          cpu_relax();
        else
          sched_yield();
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
};

}  // namespace weft::detail

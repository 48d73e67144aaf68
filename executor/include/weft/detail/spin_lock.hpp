// A test-and-test-and-set spin lock for critical sections of a few dozen
// instructions (a future's waiter list, a task's cancellation fields). It is
// never held across a callback, an allocation-heavy operation or a syscall.
#pragma once

#include <atomic>

namespace weft::detail {

class SpinLock {
 public:
  void lock() noexcept {
    // ordering: acquire on success pairs with the release in unlock().
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) __builtin_ia32_pause();
    }
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace weft::detail

// Barrier (asyncio.Barrier, 3.11+): parties tasks wait until all have arrived.
//
// Built, as asyncio's, on a Condition: every field below is read and written
// with the condition's lock held, except that n_waiting() and broken() read
// the atomics lock-free (relaxed: they are snapshots, as in asyncio). States:
// filling (arrivals counted), draining (the last arriver released the rest;
// new arrivals wait for the next cycle, BAR-04), resetting (reset() with
// tasks inside: they raise BrokenBarrierError), broken (abort(): every wait
// raises until reset()). Each wait() returns its arrival index 0..parties-1;
// the last arriver resumes first, then the others in FIFO order (BAR-03),
// which is the order the condition hands its lock on.
//
// Deviation (docs/api.md, sync): the constructor takes a signed count so that a
// negative one can be rejected with ValueError (BAR-01).
#pragma once

#include <weft/condition.hpp>
#include <weft/coro.hpp>
#include <weft/errors.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>

namespace weft {

class Barrier {
 public:
  /// @throws ValueError("parties must be > 0") for parties <= 0.
  explicit Barrier(std::int64_t parties) : parties_(checked(parties)) {}
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  /// Waits until `parties` tasks wait, then returns this task's arrival index.
  /// Inside a task. @throws BrokenBarrierError if the barrier is (or becomes)
  /// broken or is reset while waiting; CancelledError if cancelled (a waiter
  /// cancelled while the barrier fills just leaves it, BAR-05).
  Coro<std::size_t> wait() {
    LockGuard guard = co_await cond_.scoped();
    co_await block();  // while draining or resetting
    std::size_t index = count_.load(std::memory_order_relaxed);
    count_.store(index + 1, std::memory_order_relaxed);
    std::exception_ptr error;
    try {
      if (index + 1 == parties_) {
        set_state(kDraining);  // release the barrier
        cond_.notify_all();
      } else {
        co_await cond_.wait_for([this] { return state() != kFilling; });
        if (state() == kBroken || state() == kResetting)
          throw BrokenBarrierError("Abort or reset of barrier");
      }
    } catch (...) {
      error = std::current_exception();
    }
    count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    exit();
    if (error) std::rethrow_exception(error);
    co_return index;
  }

  /// Returns the barrier to the empty filling state; tasks waiting in it raise
  /// BrokenBarrierError (BAR-06). Inside a task.
  Coro<void> reset() {
    LockGuard guard = co_await cond_.scoped();
    if (count_.load(std::memory_order_relaxed) > 0) {
      if (state() != kResetting) set_state(kResetting);
    } else {
      set_state(kFilling);
    }
    cond_.notify_all();
  }

  /// Breaks the barrier: current and later wait() calls raise
  /// BrokenBarrierError until reset() (BAR-07). Inside a task.
  Coro<void> abort() {
    LockGuard guard = co_await cond_.scoped();
    set_state(kBroken);
    cond_.notify_all();
  }

  std::size_t parties() const noexcept { return parties_; }
  /// Tasks waiting for the barrier to fill (0 unless filling). Any thread.
  std::size_t n_waiting() const noexcept {
    return state() == kFilling ? count_.load(std::memory_order_relaxed) : 0;
  }
  bool broken() const noexcept { return state() == kBroken; }

 private:
  enum State : std::uint8_t { kFilling, kDraining, kResetting, kBroken };

  static std::size_t checked(std::int64_t parties) {
    if (parties < 1) throw ValueError("parties must be > 0");
    return static_cast<std::size_t>(parties);
  }
  State state() const noexcept { return state_.load(std::memory_order_relaxed); }
  void set_state(State s) noexcept { state_.store(s, std::memory_order_relaxed); }

  Coro<void> block() {
    co_await cond_.wait_for([this] { return state() != kDraining && state() != kResetting; });
    if (state() == kBroken) throw BrokenBarrierError("Barrier aborted");
  }
  /// The last task out of a draining or resetting barrier refills it.
  void exit() {
    if (count_.load(std::memory_order_relaxed) == 0) {
      if (state() == kResetting || state() == kDraining) set_state(kFilling);
      cond_.notify_all();
    }
  }

  Condition cond_;
  std::size_t parties_;
  std::atomic<std::size_t> count_{0};   // written with the lock held
  std::atomic<State> state_{kFilling};  // written with the lock held
};

}  // namespace weft

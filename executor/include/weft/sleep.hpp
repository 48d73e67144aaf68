// sleep(): asyncio.sleep. sleep(0) (or a negative delay) gives up exactly one
// trip through the ready queue (SLEEP-01); longer sleeps arm a timer on the
// loop running the task, and cancelling the task cancels that timer (TASK-15).
#pragma once

#include <weft/coro.hpp>
#include <weft/event_loop.hpp>

#include <chrono>
#include <cmath>
#include <type_traits>

namespace weft {
namespace detail {

class SleepTimer;
/// time() + delay, saturated to the clock's range (defined in event_loop.cpp).
TimePoint deadline_after(Duration delay) noexcept;
SleepTimer* sleep_start(TaskCore& task, TimePoint deadline);
void sleep_end(SleepTimer* timer, TaskCore& task);
void sleep_abandon(SleepTimer* timer) noexcept;
TimePoint sleep_deadline(const SleepTimer* timer) noexcept;

class SleepAwaiter {
 public:
  using weft_native_awaitable = void;
  explicit SleepAwaiter(Duration delay) noexcept : delay_(delay) {}
  // Moved only before it is awaited (GCC 12 moves the awaiter into the frame).
  SleepAwaiter(SleepAwaiter&& other) noexcept
      : delay_(other.delay_), task_(other.task_), timer_(std::exchange(other.timer_, nullptr)) {}
  SleepAwaiter& operator=(SleepAwaiter&&) = delete;
  ~SleepAwaiter() {
    if (timer_) sleep_abandon(timer_);
  }
  void weft_describe_await(AwaitTarget& out) const noexcept {
    out.kind = AwaitKind::sleep;
    out.delay = delay_;
    if (timer_) out.deadline = sleep_deadline(timer_);
  }
  bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    task_ = &require_task("sleep");
    suspend_at(*task_, h, *this);
    if (delay_ <= Duration::zero()) {
      task_->yield_suspend();  // re-queued behind what is ready now
    } else {
      timer_ = sleep_start(*task_, deadline_after(delay_));
    }
  }
  void await_resume() {
    if (SleepTimer* t = std::exchange(timer_, nullptr))
      sleep_end(t, *task_);
    else
      task_->end_wait();
  }

 private:
  Duration delay_;
  TaskCore* task_ = nullptr;
  SleepTimer* timer_ = nullptr;
};

template <class Rep, class Period>
Duration checked_delay(std::chrono::duration<Rep, Period> d, const char* what) {
  if constexpr (std::is_floating_point_v<Rep>) {
    if (std::isnan(d.count())) throw ValueError(std::string(what) + ": delay must not be NaN");
  }
  // Saturate instead of overflowing the nanosecond count (hours::max(), infinity).
  const double ns = std::chrono::duration<double, std::nano>(d).count();
  if (ns >= static_cast<double>(Duration::max().count())) return Duration::max();
  if (ns <= static_cast<double>(Duration::min().count())) return Duration::min();
  return std::chrono::duration_cast<Duration>(d);
}

}  // namespace detail

/// Suspends the calling task for `delay`. @throws ValueError for a NaN delay.
template <class Rep, class Period>
Coro<void> sleep(std::chrono::duration<Rep, Period> delay) {
  co_await detail::SleepAwaiter(detail::checked_delay(delay, "sleep"));
}

/// Suspends for `delay`, then returns `result`.
template <class Rep, class Period, class T>
Coro<T> sleep(std::chrono::duration<Rep, Period> delay, T result) {
  co_await detail::SleepAwaiter(detail::checked_delay(delay, "sleep"));
  co_return result;
}

}  // namespace weft

// The sleep timer behind weft::sleep (sleep.hpp): one heap entry per sleep.
#include <weft/detail/task_core.hpp>
#include <weft/errors.hpp>
#include <weft/sleep.hpp>

#include <atomic>
#include <string>

#include "loop_impl.hpp"

namespace weft::detail {

/// A sleep's timer: fired by its loop, or cancelled by Task::cancel, whichever
/// wins the CAS on `resolved_` wakes the task (exactly once).
class SleepTimer final : public TimerEntry, public WaitTarget, public FrameAllocated {
 public:
  explicit SleepTimer(TaskCore* task) noexcept : task_(task) {}
  enum : std::uint8_t { kPending, kFired, kCancelled };

  void run() override {  // due on the loop thread; the heap's reference came with it
    std::uint8_t expected = kPending;
    if (resolved_.compare_exchange_strong(expected, kFired, std::memory_order_acq_rel))
      task_->wake();
    release();
  }
  bool timer_cancelled() const noexcept override {
    return resolved_.load(std::memory_order_acquire) == kCancelled;
  }
  void add_ref() noexcept override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  bool cancel_wait(const std::string& message) override {
    std::uint8_t expected = kPending;
    if (!resolved_.compare_exchange_strong(expected, kCancelled, std::memory_order_acq_rel))
      return false;
    message_ = message;  // read by the task after the wake below
    task_->wake();
    return true;
  }
  bool abandon() noexcept {
    std::uint8_t expected = kPending;
    return resolved_.compare_exchange_strong(expected, kCancelled, std::memory_order_acq_rel);
  }
  bool was_cancelled() const noexcept { return timer_cancelled(); }
  const std::string& message() const noexcept { return message_; }

 private:
  std::atomic<std::uint32_t> refs_{2};  // the loop's heap and the awaiter
  std::atomic<std::uint8_t> resolved_{kPending};
  TaskCore* task_;
  std::string message_;
};

SleepTimer* sleep_start(TaskCore& task, TimePoint deadline) {
  LoopImpl* loop = current_loop_impl();
  auto* timer = new SleepTimer(&task);
  timer->when = deadline;
  loop->add_timer(timer);
  task.begin_wait(timer);
  return timer;
}

void sleep_end(SleepTimer* timer, TaskCore& task) {
  struct Release {
    SleepTimer* t;
    ~Release() { t->release(); }
  } release{timer};
  task.end_wait();
  if (timer->was_cancelled()) throw CancelledError(timer->message());
}

TimePoint sleep_deadline(const SleepTimer* timer) noexcept { return timer->when; }

void sleep_abandon(SleepTimer* timer) noexcept {
  timer->abandon();
  timer->release();
}

}  // namespace weft::detail

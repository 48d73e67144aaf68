// Runnable: anything a loop's ready queue can hold — a task step, a callback
// handle, a due timer. Queues link Runnables intrusively (next_ready) so that
// scheduling never allocates; a Runnable is in at most one ready queue at a time.
#pragma once

#include <string>

namespace weft::detail {

class Runnable {
 public:
  /// Runs on the thread of the loop (or worker) that dequeued it.
  virtual void run() = 0;
  Runnable* next_ready = nullptr;

 protected:
  ~Runnable() = default;
};

/// Something a suspended task waits on that cancelling the task can cancel:
/// a future (or task) it awaits, a sleep's timer.
class WaitTarget {
 public:
  /// Cancel what the task waits on; true if that will wake the task with a
  /// cancellation, false if it had already completed.
  virtual bool cancel_wait(const std::string& message) = 0;

 protected:
  ~WaitTarget() = default;
};

}  // namespace weft::detail

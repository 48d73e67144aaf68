// Executor: where blocking or CPU-heavy calls run, off the event loops.
#pragma once

#include <functional>

namespace weft {

/// A place to run functions off the event loops. submit() and shutdown() may
/// be called from any thread.
class Executor {
 public:
  virtual ~Executor() = default;
  /// Queues fn. @throws weft::RuntimeError after shutdown().
  virtual void submit(std::function<void()> fn) = 0;
  /// Refuses new work; with wait, returns once submitted work has finished.
  virtual void shutdown(bool wait = true) = 0;
};

}  // namespace weft

// Executor: where blocking or CPU-heavy calls run, off the event loops
// (docs/api.md, offloading). Implementations: ThreadPoolExecutor (elastic pool for
// blocking calls, the default executor) and TbbExecutor (a oneTBB arena for
// CPU-bound work).
#pragma once

#include <functional>

namespace weft {

/// A place to run functions off the event loops.
///
/// Contract shared by every implementation:
/// - submit() and shutdown() are thread-safe: any thread may call them,
///   concurrently, including a thread of the executor itself (but see
///   shutdown(true) below). The destructor must not run concurrently with
///   another member call.
/// - submit() never blocks on the work already queued: it queues and returns.
/// - A submitted function should not throw: EventLoop::run_in_executor wraps
///   it so that its value or exception completes a Future. If one throws
///   anyway, the executor reports it to stderr and keeps running.
/// - After shutdown(), submit() throws weft::RuntimeError; work submitted
///   before shutdown() still runs (as concurrent.futures' shutdown with
///   cancel_futures=False).
/// - The destructor calls shutdown(true).
class Executor {
 public:
  virtual ~Executor() = default;
  /// Queues fn to run on one of the executor's threads.
  /// @throws weft::RuntimeError after shutdown().
  virtual void submit(std::function<void()> fn) = 0;
  /// Refuses new work. With wait, returns once every submitted function has
  /// finished and the executor's threads are released; without, returns at
  /// once and the submitted functions still run. Idempotent.
  /// @throws weft::RuntimeError for wait = true on one of the executor's own
  /// threads (it would wait for itself).
  virtual void shutdown(bool wait = true) = 0;
};

}  // namespace weft

// TbbExecutor: a oneTBB task_arena for CPU-bound work (docs/api.md, offloading).
#pragma once

#include <weft/executor.hpp>

#include <cstddef>
#include <functional>
#include <memory>

namespace weft {

/// Runs submitted functions inside its own oneTBB task_arena, so that TBB
/// algorithms they call (tbb::parallel_reduce, parallel_for, ...) run on the
/// arena's threads only, never on the event-loop workers:
///
///   weft::TbbExecutor cpu;  // one slot per hardware thread
///   int sum = co_await loop.run_in_executor(&cpu, [&] {
///     return tbb::parallel_reduce(range, 0, body, std::plus<>());
///   });
///
/// At most max_concurrency() threads run inside the arena at once (the
/// submitted functions and the TBB work they spawn together). Submitted
/// functions start roughly in FIFO order. TBB headers stay out of this header:
/// users need them only to call TBB themselves.
///
/// Every member may be called from any thread (see Executor for the shared
/// contract); the destructor must not run inside a submitted function.
class TbbExecutor : public Executor {
 public:
  /// @param max_concurrency  threads in the arena; 0 for the hardware concurrency.
  /// @throws weft::ValueError if max_concurrency is negative.
  explicit TbbExecutor(int max_concurrency = 0);
  /// shutdown(true).
  ~TbbExecutor() override;

  TbbExecutor(const TbbExecutor&) = delete;
  TbbExecutor& operator=(const TbbExecutor&) = delete;

  /// Enqueues fn into the arena and returns without waiting for a thread.
  /// A function that throws is reported to stderr; the arena carries on.
  /// @throws weft::ValueError if fn is empty.
  /// @throws weft::RuntimeError after shutdown().
  void submit(std::function<void()> fn) override;
  /// Refuses new work; functions already submitted still run. With wait,
  /// returns once they have all finished. Idempotent.
  /// @throws weft::RuntimeError for wait = true inside a submitted function.
  void shutdown(bool wait = true) override;

  /// The arena's concurrency: the threads that may run in it at once.
  int max_concurrency() const noexcept;
  /// Functions submitted and not yet finished.
  std::size_t pending() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft

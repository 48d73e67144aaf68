// ThreadPoolExecutor: the elastic pool that runs blocking calls off the event
// loops (docs/api.md, offloading; the default executor of run_in_executor/to_thread).
#pragma once

#include <weft/executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace weft {

/// An elastic pool of threads for blocking calls, shaped like Tokio's blocking
/// pool. It starts with no threads. submit() hands the function to an idle
/// thread when there is one (waking exactly one), otherwise starts a new
/// thread while fewer than max_workers are alive, otherwise queues it (FIFO)
/// for the next thread that finishes. A thread idle for keep_alive exits.
///
/// A thread that runs out of work first spins for Options::spin (polling,
/// paced by clock reads, like Go's spinning Ms) before it blocks, so
/// back-to-back calls (`co_await to_thread(...)` in a loop) are handed over
/// without a futex wake-up: a function submitted to a spinning thread costs
/// neither side a system call. At most max(1, hardware threads / 4) threads
/// spin at once, none on a single-CPU machine, and spins that find no work
/// make the next ones exponentially rarer. Spinning is part of the idle time:
/// an idle pool is blocked (0% CPU) at most `spin` after its last function.
///
/// Every member may be called from any thread (see Executor for the shared
/// contract); the destructor must not run on one of the pool's threads.
class ThreadPoolExecutor : public Executor {
 public:
  struct Options {
    /// Most threads alive at once; further work waits in the queue. >= 1.
    std::size_t max_workers = 512;
    /// How long a thread waits for work before it exits. >= 0.
    std::chrono::nanoseconds keep_alive = std::chrono::seconds(10);
    /// Thread name (pthread_setname_np), cut to 15 characters.
    std::string thread_name_prefix = "weft-blocking";
    /// How long a thread that runs out of work polls for more before it
    /// blocks on a condition variable (bounded by keep_alive). 0 disables
    /// spinning. >= 0.
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
  };

  /// A snapshot, taken under the pool's lock; the figures agree with each
  /// other (threads == idle + busy) but may be stale by the time they are read.
  struct Stats {
    std::size_t threads = 0;                ///< alive: idle + busy
    std::size_t idle = 0;                   ///< waiting for work and not yet handed any
    std::size_t busy = 0;                   ///< running a function, or woken to run one
    std::size_t spinning = 0;               ///< waiting by polling, not blocked (<= threads)
    std::size_t queued = 0;                 ///< submitted, not started
    std::uint64_t spawned_total = 0;        ///< threads started since construction
    std::uint64_t retired_total = 0;        ///< threads that exited after keep_alive idle
    std::uint64_t completed_total = 0;      ///< functions that returned or threw
    std::uint64_t wakeups_total = 0;        ///< submits that woke a blocked thread
    std::uint64_t spin_handoffs_total = 0;  ///< submits taken by a spinner, no wake-up
  };

  /// @throws weft::ValueError if max_workers is 0.
  explicit ThreadPoolExecutor(std::size_t max_workers = 512);
  /// @throws weft::ValueError if options.max_workers is 0, or keep_alive or
  /// spin is negative.
  explicit ThreadPoolExecutor(Options options);
  /// shutdown(true): queued and running functions finish, threads are joined.
  /// Precondition: not called on one of the pool's threads.
  ~ThreadPoolExecutor() override;

  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  /// Queues fn; it starts at once if a thread is idle or one may be added.
  /// A function that throws is reported to stderr; the thread carries on.
  /// @throws weft::ValueError if fn is empty.
  /// @throws weft::RuntimeError after shutdown().
  /// @throws std::system_error if no thread is alive and none can be started
  /// (fn is then not queued).
  void submit(std::function<void()> fn) override;
  /// Refuses new work; queued functions still run, then threads exit. With
  /// wait, returns once every thread has been joined (every concurrent caller
  /// with wait returns only then). Idempotent.
  /// @throws weft::RuntimeError for wait = true on one of the pool's threads.
  void shutdown(bool wait = true) override;

  Stats stats() const;
  const Options& options() const noexcept;

 private:
  struct Impl;  // the pool's state and its invariants: thread_pool_executor.cpp
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft

// Scheduler and Worker: the multi-threaded runtime behind weft::Runtime.
//
// Invariants (docs/architecture.md, invariants 3, 4 and 9):
// - Each Worker is one thread owning one EventLoop (its LoopImpl: ready list
//   for loop-affine work, timers, selector, inbox) and one LocalQueue of
//   stealable tasks. Only the owner pushes to its LocalQueue; anyone may steal.
// - Where a woken task goes: loop-affine tasks (pinned, or any task when there
//   is one worker) to their home loop; others, woken or created by a task
//   step on a worker, to that worker's LIFO slot (RunOptions::lifo_slot; the
//   previous occupant moves to the back of the LocalQueue); woken anywhere
//   else on a worker, or by their own step (a yield), to the back of its
//   LocalQueue; from a foreign thread, to the shared injector. The slot is
//   owner-only and emptied by run_step before it returns (at most
//   kMaxLifoSteps slot steps, the rest to the queue), so thieves, parking
//   and shutdown only ever look at the queues.
// - Idle protocol (after Tokio's idle.rs and Go's findRunnable): a worker with
//   nothing to run first takes from the injector, then, if fewer than half of
//   the workers are searching, becomes a searcher and steals half of a random
//   victim's queue. Failing that it registers as idle (idle_ list under
//   idle_mu_, counted in idle_state_), re-checks every queue, and parks in its selector until
//   the next timer. Whoever adds stealable work (push with more than one task
//   queued, inject) unparks one idle worker only when nobody is searching:
//   the unparked worker starts as a searcher. The last searcher to find work
//   unparks another if work is left to find, so work keeps spreading without
//   waking everybody.
// - The injector is FIFO across every thread that injects (one queue under
//   a lock, as Tokio's inject queue and Go's global run queue): a task
//   injected from a thread that rarely injects must not wait behind a busier
//   producer. (A lock-free multi-producer queue with per-producer sub-queues
//   served the fullest sub-queue first: under sustained load a task woken
//   by one worker's overflow waited tens of seconds for a turn.)
//   Lost wake-ups are excluded by a store-buffering pair on the one word
//   idle_state_ (searching count in the low half, idle count in the high
//   half): the parker's seq_cst RMW (idle+1, searching-1), a seq_cst fence,
//   then its queue reads, against the pusher's queue write, a seq_cst fence,
//   then its read of the word. Of the two fences one comes first in the
//   single total order: if the parker's, the pusher's read sees it idle and
//   unparks it (or sees a searcher that will re-check after it); if the
//   pusher's, the parker's queue reads see the push. The pusher only reads
//   the word, so busy workers pushing all the time share its cache line
//   instead of bouncing it. Under TSan, which does not model fences, the
//   pusher's read is an RMW (read_idle_state_after_push) and the pair is the
//   two RMWs in the word's modification order.
// - Unparking costs an eventfd write only when the picked worker is blocked
//   in its selector: the unparker stores woken_as_searcher_ then reads the
//   loop's parked_ (LoopImpl::wake_if_parked), the parker stores parked_ then
//   reads woken_as_searcher_ (LoopImpl::poll), all seq_cst, so either the
//   unparker sees it parked and writes, or the parker sees the request and
//   does not block. A worker still spinning before its park is picked for
//   free.
// - A searcher that finds work hands the search over (notify_parked) only if
//   work is left for another worker to find (injector or a stealable queue),
//   read after its RMW of idle_state_ and a seq_cst fence. That keeps the
//   lost-wake-up argument: a pusher that saw it searching and did not notify
//   read the word before the searcher's RMW, so the pusher's fence precedes
//   that RMW, hence the searcher's fence, and the searcher's re-read sees the
//   push; a pusher whose read comes later sees no searcher and notifies
//   itself.
// - Shutdown order: cancel every task and wait (grace) -> shut the default
//   executors down -> stopped_ = true, wake and join every worker -> drop
//   queued pointers -> abandon the tasks left (frames destroyed, futures
//   cancelled) -> destroy the loops.
#pragma once

#include <weft/runtime.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "local_queue.hpp"
#include "loop_impl.hpp"
#include "task_registry.hpp"
#include "worker_probe.hpp"

namespace weft::detail {

class Scheduler;
class StallWatch;
class IntrospectServer;

class Worker {
 public:
  Worker(Scheduler* scheduler, unsigned index);
  Scheduler* scheduler() const noexcept { return scheduler_; }
  unsigned index() const noexcept { return index_; }
  EventLoop& loop() noexcept { return loop_; }
  LocalQueue& run_queue() noexcept { return run_queue_; }

  void start();
  void join();
  /// Owner thread only. `yielded`: the task's own step ended with it
  /// runnable again (a yield, or a wake during the step): it goes to the back
  /// of the run queue, never to the LIFO slot.
  void push_local(TaskCore* task, bool yielded) noexcept;
  void count_spawn() noexcept { spawned_.fetch_add(1, std::memory_order_relaxed); }
  /// Any thread: an unparker has picked this worker and not yet been seen by
  /// it. LoopImpl reads it while spinning (a hint) and, seq_cst, right after
  /// it stores parked_ = true: the other half of unpark_one()'s store-then-
  /// read of parked_, so a worker picked before it parks never blocks.
  bool unpark_requested(std::memory_order order = std::memory_order_relaxed) const noexcept {
    return woken_as_searcher_.load(order);
  }
  WorkerMetrics metrics() const;
  WorkerProbe& probe() noexcept { return probe_; }

 private:
  friend class Scheduler;
  void main();
  TaskCore* next_local_task() noexcept;
  TaskCore* find_work() noexcept;
  TaskCore* steal() noexcept;
  bool transition_to_searching() noexcept;
  void transition_from_searching() noexcept;
  void park();
  void leave_idle() noexcept;
  /// Runs one step of `task` (dequeued by this worker), then the tasks that
  /// step put in the LIFO slot.
  void run_step(TaskCore* task);
  void push_back_queue(TaskCore* task) noexcept;

  Scheduler* scheduler_;
  unsigned index_;
  EventLoop loop_;
  LocalQueue run_queue_;
  std::thread thread_;
  // owner-only
  bool searching_ = false;
  /// Inside run_step: wakes may use the LIFO slot.
  bool in_step_ = false;
  /// This tick already checked for an idle sibling to wake (spawn batching:
  /// a burst of create_task wakes at most one; see push_back_queue).
  bool notified_in_tick_ = false;
  const bool lifo_enabled_;
  static constexpr unsigned kMaxLifoSteps = 3;
  /// The task woken (or created) last by the running step; runs right after it.
  TaskCore* lifo_ = nullptr;
  std::uint32_t tick_ = 0;
  std::uint32_t rng_;
  // set by an unparker (under idle_mu_): this worker starts as a searcher
  std::atomic<bool> woken_as_searcher_{false};
  // metrics: written by the owner (relaxed), read by anyone
  std::atomic<std::uint64_t> spawned_{0}, steal_attempts_{0}, steal_successes_{0}, stolen_{0};
  std::atomic<std::int64_t> started_ns_{0};  // when main() began (Clock, ns)
  WorkerProbe probe_;
};

struct CaptureState;

class Scheduler {
 public:
  explicit Scheduler(const RunOptions& options);
  ~Scheduler();

  RunOptions options;
  TaskRegistry registry;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<bool> stopped{false};
  std::atomic<unsigned> next_spawn_loop{0};
  /// The runtime's default executor, shared by its loops; created on first use.
  std::mutex executor_mu;
  std::shared_ptr<Executor> default_executor;  // guarded by executor_mu
  /// Await-chain captures take turns (call_graph.cpp's PauseWorkers): the
  /// one under way, and the wake-up of those waiting for it.
  std::mutex capture_mu;
  std::condition_variable capture_cv;
  std::shared_ptr<CaptureState> capture_current;  // guarded by capture_mu
  /// The stall detector's hazard pointer (worker_probe.hpp).
  std::atomic<TaskCore*> stall_inspecting{nullptr};
  /// Tasks record when they were created (weft-ps's AGE): only with
  /// RunOptions::introspect, which is what asks for it (a clock read per spawn).
  const bool record_task_age = !options.introspect.empty();

  /// Any thread.
  void inject(TaskCore* task) noexcept;
  TaskCore* pop_injected() noexcept;
  std::int64_t injected() const noexcept { return injector_count_.load(std::memory_order_seq_cst); }
  /// Unparks an idle worker if none is searching (after a fence by the caller).
  void notify_parked() noexcept;
  void stop_and_join();
  /// Cancels every task; waits until none is left or `deadline` passes.
  /// Returns the tasks cancelled (for run()'s error reporting).
  bool cancel_all_and_wait(TimePoint deadline, std::vector<TaskRef>* cancelled);
  void shutdown_executors();
  void abandon_leftovers() noexcept;

 private:
  friend class Worker;
  bool unpark_one() noexcept;
  bool any_stealable_work() const noexcept;

  void push_injected(TaskCore* task) noexcept;

  std::mutex injector_mu_;
  std::deque<TaskCore*> injector_;  // guarded by injector_mu_; FIFO
  /// Tasks injected: counted before the push, so it may run ahead of
  /// injector_ (never behind); what parkers re-check without the lock.
  std::atomic<std::int64_t> injector_count_{0};
  static constexpr std::uint64_t kOneSearching = 1;
  static constexpr std::uint64_t kOneIdle = std::uint64_t{1} << 32;
  static std::uint32_t searching_of(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>(s);
  }
  static std::uint32_t idle_of(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>(s >> 32);
  }
  std::atomic<std::uint64_t> idle_state_{0};
  /// A pusher reads idle_state_ after its queue write. A seq_cst fence and a
  /// load keep the word's cache line shared between busy workers (an RMW
  /// here, once per push, made every push of a busy worker miss on it).
  /// TSan does not model fences, so under TSan it stays an RMW.
  std::uint64_t read_idle_state_after_push() noexcept {
#if defined(WEFT_TSAN)
    return idle_state_.fetch_add(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return idle_state_.load(std::memory_order_relaxed);
#endif
  }
  /// The parker's fence between its RMW of idle_state_ and its queue reads.
  static void fence_before_queue_reads() noexcept {
#if !defined(WEFT_TSAN)
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }
  std::mutex idle_mu_;
  std::vector<Worker*> idle_;  // guarded by idle_mu_
  bool joined_ = false;
  std::unique_ptr<StallWatch> stall_watch_;              // null: no stall detector
  std::unique_ptr<IntrospectServer> introspect_server_;  // null: RunOptions::introspect empty
};

/// The worker running on this thread, or null.
Worker* current_worker() noexcept;
/// Runtime::metrics().
RuntimeMetrics collect_metrics(Scheduler& scheduler);
/// Shuts an executor down, waiting for running calls (defined with the executors).
void shutdown_executor(Executor& executor);
/// Busy and idle threads of the default executor when it is a ThreadPoolExecutor.
void blocking_pool_counts(Scheduler& scheduler, std::int64_t& busy, std::int64_t& idle);
/// Abandons every task of a registry (standalone loop destruction).
void shutdown_abandon_tasks(TaskRegistry& registry) noexcept;

}  // namespace weft::detail

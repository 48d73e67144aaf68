// Runtime: N workers, one per core, each a thread owning an EventLoop; tasks
// are shared between them by work stealing. weft::run() (asyncio.run, in
// <weft/run.hpp> of weft::weft) runs one; with weft::executor alone,
// Runtime::block_on does.
//
// With workers = 1 every task is loop-affine and the order in which
// callbacks and task steps run is exactly asyncio's.
#pragma once

#include <weft/event_loop.hpp>
#include <weft/hooks.hpp>
#include <weft/loop_options.hpp>
#include <weft/metrics.hpp>
#include <weft/stall_report.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weft {

struct RunOptions {
  /// 0: $WEFT_WORKERS if set, else std::thread::hardware_concurrency().
  unsigned workers = 0;
  /// The switches of every worker's loop: debug mode, io_uring, the child
  /// watcher (<weft/loop_options.hpp>; asyncio.run(debug=True) is
  /// `{.loop = {.debug = true}}`).
  LoopOptions loop = {};
  /// weft::run() only: the first SIGINT cancels the main task and run()
  /// throws KeyboardInterrupt (<weft/signals.hpp>), as asyncio.run.
  bool handle_sigint = true;
  /// Every task starts eagerly unless its TaskOptions::eager says otherwise
  /// (asyncio's eager_task_factory; see TaskOptions::eager).
  bool eager_tasks = false;
  /// Cooperative budget (Tokio's coop): awaits a task step may complete
  /// without suspending (queue get/put, a set Event, a done future, buffered
  /// reads; not lock acquires) before the next such await yields, so that a
  /// task looping on a never-empty queue or a flooded socket cannot starve
  /// the loop's timers, I/O and other tasks. 0 turns it off. Empty: 128 with
  /// several workers, off with one (asyncio's exact order).
  std::optional<unsigned> coop_budget = std::nullopt;
  /// LIFO slot (Tokio's): with several workers, a task that a running task
  /// wakes or creates runs right after the waker's step on the same worker,
  /// ahead of the worker's FIFO run queue (at most 3 in a row, then it takes
  /// its turn at the back), so a message ping-pong or a fork-join tree skips
  /// the queue and stays in cache. With one worker, and for pinned tasks,
  /// there is no such slot: the order stays exactly asyncio's. false: every
  /// wake-up goes to the back of the run queue (see docs/scheduling-options.md).
  bool lifo_slot = true;

  // Tunables (defaults suit production; tests shrink them to force rare paths).
  /// Capacity of each worker's stealable run queue (power of two, >= 2).
  std::uint32_t local_queue_capacity = 256;
  /// A worker takes a task from the shared injection queue every this many
  /// ticks even when its own queue is busy, so injected work cannot starve.
  unsigned global_queue_interval = 61;
  /// Most tasks a worker runs from its run queue before it drains its inbox,
  /// polls I/O and fires timers again.
  unsigned event_interval = 61;

  // Observability (docs/observability.md).
  /// Collect each worker's poll-duration histogram (WorkerMetrics::
  /// poll_time_histogram): two clock reads per task step, so off by default
  /// (Tokio's enable_metrics_poll_time_histogram).
  bool poll_time_histogram = false;
  /// Hooks (hooks.hpp): a task was created (on the creating thread), a step
  /// starts and ends (on the worker running it), the task finished (its
  /// last step's worker, after its outcome is set); a worker is about to
  /// block in its selector for want of work, and is back.
  TaskHook on_task_spawn = {};
  TaskHook on_task_poll_start = {};
  TaskHook on_task_poll_end = {};
  TaskHook on_task_terminate = {};
  WorkerHook on_worker_park = {};
  WorkerHook on_worker_unpark = {};
  /// Stall detector: a watchdog thread reports a worker that has not come
  /// back to its loop (a task step or callback holding it) for this long.
  /// 0 turns it off (no thread).
  std::chrono::nanoseconds stall_threshold = std::chrono::milliseconds(100);
  /// Whether a stall report carries a backtrace of the stalled worker's
  /// thread. Taking it sends that thread SIGURG, which interrupts a blocking
  /// system call in the stalled step (poll, epoll_wait, nanosleep, a read
  /// with a timeout) with EINTR: off by default so that the detector never
  /// changes what a program's own calls return.
  bool stall_backtrace = false;
  /// Stall reports name what the stalled task awaited at its last
  /// suspension, and through which coroutines (StallReport::await_chain).
  /// Its frames cannot be read while the stalled step runs them, so each step
  /// copies that chain (function names, locations, the awaited object) when
  /// it starts: a walk of the task's frames per step, hence off by default.
  bool stall_await_chain = false;
  /// Where stall reports go (on the watchdog thread); unset: stderr.
  std::function<void(const StallReport&)> on_stall = {};
  /// Rate limit: reports of one runtime at least this far apart; a stall is
  /// reported once however long it lasts.
  std::chrono::nanoseconds stall_report_interval = std::chrono::seconds(1);
  /// A unix socket path: the runtime serves its tasks and their await
  /// chains there, for `weft-ps PATH` (docs/observability.md). Empty: off.
  /// @throws ValueError (from the Runtime) for a path too long for a unix
  /// socket or naming an existing file that is not a socket.
  std::string introspect = {};
};

class Runtime;

namespace detail {
class Scheduler;

/// What weft::run() (<weft/run.hpp>) needs of a Runtime beyond its API.
struct RuntimeAccess {
  template <class T>
  static void wait_until_done(Runtime& runtime, Task<T>& task);
  static void shutdown_after_main(Runtime& runtime);
  /// The value of a done task, or its exception rethrown.
  template <class T>
  static T result(Task<T> task) {
    detail::FutureAccess::state(task)->check_result();
    if constexpr (!std::is_void_v<T>)
      return std::move(detail::FutureAccess::state(task)->value_ref());
  }
};
}  // namespace detail
struct TaskCallGraph;
class Runtime;
std::vector<TaskCallGraph> capture_call_graphs(Runtime& runtime);

class Runtime {
 public:
  /// Starts the workers. @throws ValueError for workers above 1024 or a bad
  /// local_queue_capacity.
  explicit Runtime(RunOptions options = {});
  /// shutdown() with the default grace of 5 seconds, unless already shut down.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Runs `coro` to completion from a non-worker thread and returns its value.
  /// @throws RuntimeError from a worker thread or after shutdown.
  template <class T>
  T block_on(Coro<T> coro) {
    Task<T> task = spawn(std::move(coro));
    wait_until_done(*detail::FutureAccess::state(task));
    return detail::RuntimeAccess::result(std::move(task));
  }
  /// Schedules `coro` from any thread (on the calling worker's loop, or on the
  /// next loop in turn from a foreign thread). @throws RuntimeError after shutdown.
  template <class T>
  Task<T> spawn(Coro<T> coro, TaskOptions options) {
    return detail::spawn_on(spawn_loop(), std::move(coro), std::move(options));
  }
  /// Not a default argument: see weft::create_task (GCC 12 and aggregate temporaries).
  template <class T>
  Task<T> spawn(Coro<T> coro) {
    return spawn(std::move(coro), TaskOptions{});
  }

  EventLoop& loop(unsigned index);
  unsigned workers() const;
  RuntimeMetrics metrics() const;
  /// Cancels every pending task, waits up to `grace` for them to finish,
  /// shuts the default executor down, joins the workers. Tasks still pending
  /// after the grace are reported and destroyed. Idempotent.
  void shutdown(std::chrono::nanoseconds grace);

 private:
  friend struct detail::RuntimeAccess;
  /// run()'s shutdown: waits for cancelled tasks without a deadline and
  /// reports errors they raise while being cancelled (RUN-03, RUN-04).
  void shutdown_after_main();
  /// Blocks the calling (non-worker) thread until `future` is done.
  /// @throws RuntimeError on a worker thread.
  void wait_until_done(detail::FutureBase& future);
  friend std::vector<TaskCallGraph> capture_call_graphs(Runtime& runtime);
  EventLoop* spawn_loop();
  std::unique_ptr<detail::Scheduler> scheduler_;
};

namespace detail {
/// The loops of the runtime whose worker runs the calling code, in worker
/// order (on a standalone loop: that loop). Used by weft::io to open one
/// listening socket per worker (ServerOptions::reuse_port).
/// @throws RuntimeError outside a running loop.
std::vector<EventLoop*> running_loops();
}  // namespace detail

namespace detail {
template <class T>
void RuntimeAccess::wait_until_done(Runtime& runtime, Task<T>& task) {
  runtime.wait_until_done(*detail::FutureAccess::state(task));
}
inline void RuntimeAccess::shutdown_after_main(Runtime& runtime) { runtime.shutdown_after_main(); }
}  // namespace detail

}  // namespace weft

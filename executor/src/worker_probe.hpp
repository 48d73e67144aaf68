// WorkerProbe: what a runtime worker publishes about the task steps it runs,
// for its metrics, the RunOptions hooks and the stall detector.
//
// - Written by the owner worker only (a relaxed load and store, no
//   read-modify-write), read by anyone. Standalone loops have no probe
//   (t_probe is null there). A step publishes itself only where something
//   reads it (LoopImpl::step_probe: the stall detector, a poll hook, the
//   histogram); otherwise it only counts itself in its loop's counters.
// - polls advances at every task step and iterations at every worker loop
//   iteration; the stall detector (stall_watch.cpp) calls a worker stalled
//   when neither has moved for the threshold while it is not idle.
// - running is the task whose step the worker runs (null between steps; an
//   eager first step nested in another step puts the outer task back when
//   it returns: launch_task).
//   The stall detector reads that task while the step may end and the task
//   finish on the worker; `inspecting` is its hazard pointer: it stores the
//   task there, fences, and re-reads running; a finishing task fences after
//   its step cleared running and waits while inspecting names it
//   (task_finished). One of the two sees the other's store (the fences'
//   total order), so the detector never reads a freed task. `inspecting` is
//   the runtime's, not the worker's: a task whose step ended on one worker
//   may finish on another (the store of running happens before that finish).
// - Backtraces: the detector sets backtrace_state to kRequested and signals
//   the worker thread; the handler (stall_watch.cpp, async-signal-safe: it
//   touches only this struct and backtrace(), loaded beforehand) takes the
//   request (kRequested -> kCapturing), fills frames and stores kReady. A
//   detector that gives up waiting withdraws a request not yet taken
//   (kRequested -> kNoBacktrace), so a late signal captures nothing.
#pragma once

#include <weft/detail/task_core.hpp>
#include <weft/hooks.hpp>
#include <weft/metrics.hpp>
#include <weft/runtime.hpp>

#include "loop_impl.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <pthread.h>

namespace weft::detail {

inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct WorkerProbe {
  WorkerProbe(const RunOptions& options, unsigned index,
              std::atomic<TaskCore*>* inspecting) noexcept;

  std::atomic<std::uint64_t> iterations{0};
  std::atomic<TaskCore*> running{nullptr};
  /// Blocked in its selector for want of work (or about to be).
  std::atomic<bool> idle{false};
  std::atomic<TaskCore*>* const inspecting;
  std::atomic<std::uint64_t> polls{0};
  std::array<std::atomic<std::uint64_t>, kPollTimeBuckets> poll_time{};
  std::atomic<std::uint64_t> poll_time_sum_ns{0};

  // Backtrace hand-off (see the top).
  static constexpr int kNoBacktrace = 0, kRequested = 1, kCapturing = 2, kReady = 3;
  static constexpr int kMaxFrames = 64;
  std::atomic<int> backtrace_state{kNoBacktrace};
  void* frames[kMaxFrames] = {};
  int frame_count = 0;
  std::atomic<bool> thread_started{false};
  pthread_t thread{};  // valid once thread_started

  const RunOptions& options;
  const unsigned index;
  /// A histogram or a poll hook is on: steps take the out-of-line path.
  const bool slow;

  // The await chain of the task whose step runs, as it was when the step
  // started (RunOptions::stall_await_chain): written by the worker at each
  // step's start (copy_chain), read by the stall detector (read_chain) under
  // a sequence lock: chain_seq is odd while a copy is being written, and a
  // read that saw it change is dropped. Only static strings (function names,
  // file names) and numbers are copied, never a pointer into the frames.
  static constexpr int kMaxChain = 16;
  struct ChainFrame {
    std::atomic<const char*> function{nullptr};
    std::atomic<const char*> file{nullptr};
    std::atomic<unsigned> line{0};
  };
  std::atomic<std::uint64_t> chain_seq{0};
  std::atomic<TaskCore*> chain_task{nullptr};
  std::atomic<int> chain_depth{0};
  ChainFrame chain[kMaxChain];
  std::atomic<AwaitKind> chain_awaits{AwaitKind::none};
  std::atomic<const void*> chain_object{nullptr};
  std::atomic<std::uint64_t> chain_task_id{0};
  /// On the worker, before `task`'s step (its frames hold still).
  void copy_chain(TaskCore* task) noexcept;
  /// On any thread: the chain copied for `task`, as StallReport::await_chain
  /// lines; empty if the copy is another task's or changed while read.
  std::vector<std::string> read_chain(TaskCore* task) const;

  /// The stall detector or on_task_terminate wants task_finished().
  const bool on_finish;

  std::int64_t begin_slow(TaskCore* task) noexcept;
  void end_slow(TaskCore* task, std::int64_t start_ns) noexcept;
  /// `task` finished on this worker (after its last step): waits out the
  /// stall detector's hazard pointer, then calls on_task_terminate.
  void task_finished(TaskCore* task) noexcept;
};

/// Calls on_task_spawn (noexcept: a throwing hook terminates).
void task_spawned(const RunOptions& options, TaskCore* task) noexcept;

/// The probe of the runtime worker on this thread; null elsewhere.
extern constinit thread_local WorkerProbe* t_probe;

/// Around one task step on `loop`: running, poll count; hooks and the
/// histogram when on. Kept to a few instructions: it runs at every step.
class StepProbe {
 public:
  StepProbe(TaskCore* task, LoopImpl* loop) noexcept
      : probe_(loop ? loop->step_probe : nullptr), task_(task) {
    if (!probe_) {
      if (loop) bump(loop->counters.steps);
      return;
    }
    // ordering: release, so that the stall detector's acquire load of
    // running sees the task's fields (its id, set at launch). A plain store on x86.
    probe_->running.store(task, std::memory_order_release);
    bump(probe_->polls);
    if (probe_->slow) [[unlikely]]
      start_ns_ = probe_->begin_slow(task);
  }
  ~StepProbe() {
    if (!probe_) return;
    if (probe_->slow) [[unlikely]]
      probe_->end_slow(task_, start_ns_);
    probe_->running.store(nullptr, std::memory_order_relaxed);
  }
  StepProbe(const StepProbe&) = delete;
  StepProbe& operator=(const StepProbe&) = delete;

 private:
  WorkerProbe* probe_;
  TaskCore* task_;
  std::int64_t start_ns_ = 0;
};

}  // namespace weft::detail

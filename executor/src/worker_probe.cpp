// WorkerProbe and the hooks' TaskMeta: see worker_probe.hpp.
#include "worker_probe.hpp"

#include <weft/detail/cpu_relax.hpp>

#include <weft/coro.hpp>

#include <algorithm>
#include <bit>
#include <cstdio>

namespace weft {

std::uint64_t TaskMeta::id() const noexcept { return core_->id(); }
std::string TaskMeta::name() const { return core_->name(); }

namespace detail {

constinit thread_local WorkerProbe* t_probe = nullptr;

namespace {
std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::size_t poll_time_bucket(std::uint64_t ns) noexcept {
  // Bucket i holds (2^(i-1), 2^i] microseconds; bucket 0 everything up to 1 µs.
  if (ns <= 1000) return 0;
  std::size_t b = static_cast<std::size_t>(std::bit_width((ns - 1) / 1000));
  return b < kPollTimeBuckets ? b : kPollTimeBuckets - 1;
}
}  // namespace

WorkerProbe::WorkerProbe(const RunOptions& opts, unsigned i,
                         std::atomic<TaskCore*>* inspecting_task) noexcept
    : inspecting(inspecting_task),
      options(opts),
      index(i),
      slow(opts.poll_time_histogram || opts.on_task_poll_start || opts.on_task_poll_end ||
           (opts.stall_await_chain && opts.stall_threshold.count() > 0)),
      on_finish(inspecting_task != nullptr || static_cast<bool>(opts.on_task_terminate)) {}

std::int64_t WorkerProbe::begin_slow(TaskCore* task) noexcept {
  if (options.stall_await_chain && inspecting) copy_chain(task);
  if (options.on_task_poll_start) options.on_task_poll_start(TaskAccess::make<TaskMeta>(task));
  return options.poll_time_histogram ? now_ns() : 0;
}

void WorkerProbe::end_slow(TaskCore* task, std::int64_t start_ns) noexcept {
  if (options.poll_time_histogram) {
    auto took = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns() - start_ns));
    bump(poll_time[poll_time_bucket(took)]);
    bump(poll_time_sum_ns, took);
  }
  if (options.on_task_poll_end) options.on_task_poll_end(TaskAccess::make<TaskMeta>(task));
}

void WorkerProbe::task_finished(TaskCore* task) noexcept {
  // The other half of the stall detector's hazard-pointer protocol
  // (worker_probe.hpp): this step already put `running` back. Null: the
  // runtime has no stall detector.
  if (inspecting) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    while (inspecting->load(std::memory_order_acquire) == task) cpu_relax();
  }
  if (options.on_task_terminate) options.on_task_terminate(TaskAccess::make<TaskMeta>(task));
}

void WorkerProbe::copy_chain(TaskCore* task) noexcept {
  const std::uint64_t seq = chain_seq.load(std::memory_order_relaxed);
  chain_seq.store(seq + 1, std::memory_order_relaxed);
  // ordering: release fence, so that a reader that sees any store below also
  // sees the odd sequence number (and drops what it read).
  std::atomic_thread_fence(std::memory_order_release);
  chain_task.store(task, std::memory_order_relaxed);
  int depth = 0;
  AwaitTarget awaits;
  const CoroPromiseBase* root = task->root_promise();
  if (root && task->started() && task->resume_in_coro()) {
    // As call_graph.cpp's walk: innermost first; the frames hold still (the
    // task is about to run on this thread).
    const CoroPromiseBase* p =
        &std::coroutine_handle<CoroPromiseBase>::from_address(task->resume_point().address())
             .promise();
    p->describe_awaited(awaits);
    for (; p && depth < kMaxChain; ++depth) {
      chain[depth].function.store(p->function_name(), std::memory_order_relaxed);
      chain[depth].file.store(p->await_where().file_name(), std::memory_order_relaxed);
      chain[depth].line.store(p->await_where().line(), std::memory_order_relaxed);
      if (p == root) {
        ++depth;
        break;
      }
      p = p->awaiting_coro();
    }
  }
  chain_depth.store(depth, std::memory_order_relaxed);
  chain_awaits.store(awaits.kind, std::memory_order_relaxed);
  chain_object.store(awaits.object, std::memory_order_relaxed);
  chain_task_id.store(awaits.task_id, std::memory_order_relaxed);
  // ordering: release publishes the copy with the even sequence number.
  chain_seq.store(seq + 2, std::memory_order_release);
}

std::vector<std::string> WorkerProbe::read_chain(TaskCore* task) const {
  // ordering: acquire pairs with copy_chain's final release store.
  const std::uint64_t seq = chain_seq.load(std::memory_order_acquire);
  if (seq % 2 != 0 || chain_task.load(std::memory_order_relaxed) != task) return {};
  int depth = std::min(chain_depth.load(std::memory_order_relaxed), kMaxChain);
  std::vector<std::string> frames;
  for (int i = depth - 1; i >= 0; --i) {
    // Null only in an entry never written: possible while a copy is being
    // written, which the re-read below drops.
    const char* function = chain[i].function.load(std::memory_order_relaxed);
    std::string f = function ? function : "?";
    const char* file = chain[i].file.load(std::memory_order_relaxed);
    if (file && *file)
      f += "  " + std::string(file) + ":" +
           std::to_string(chain[i].line.load(std::memory_order_relaxed));
    frames.push_back(std::move(f));
  }
  AwaitKind kind = chain_awaits.load(std::memory_order_relaxed);
  const void* object = chain_object.load(std::memory_order_relaxed);
  std::uint64_t task_id = chain_task_id.load(std::memory_order_relaxed);
  // ordering: acquire fence, then re-read: unchanged means nothing above
  // came from a copy being written (the sequence lock's reader side).
  std::atomic_thread_fence(std::memory_order_acquire);
  if (chain_seq.load(std::memory_order_relaxed) != seq || frames.empty()) return {};
  std::string awaits = std::string("awaits ") + to_string(kind);
  if (object) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " %p", object);
    awaits += buf;
  }
  if (kind == AwaitKind::task) awaits += " (task id " + std::to_string(task_id) + ")";
  frames.push_back(std::move(awaits));
  return frames;
}

void task_spawned(const RunOptions& options, TaskCore* task) noexcept {
  options.on_task_spawn(TaskAccess::make<TaskMeta>(task));
}

}  // namespace detail
}  // namespace weft

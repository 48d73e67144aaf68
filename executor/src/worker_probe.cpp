// WorkerProbe and the hooks' TaskMeta: see worker_probe.hpp.
#include "worker_probe.hpp"

#include <weft/detail/cpu_relax.hpp>

#include <bit>

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
      slow(opts.poll_time_histogram || opts.on_task_poll_start || opts.on_task_poll_end),
      on_finish(inspecting_task != nullptr || static_cast<bool>(opts.on_task_terminate)) {}

std::int64_t WorkerProbe::begin_slow(TaskCore* task) noexcept {
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

void task_spawned(const RunOptions& options, TaskCore* task) noexcept {
  options.on_task_spawn(TaskAccess::make<TaskMeta>(task));
}

}  // namespace detail
}  // namespace weft

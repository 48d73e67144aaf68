// Runtime metrics (Tokio's RuntimeMetrics): counters and gauges per worker
// and for the runtime, and their rendering in Prometheus's text format.
//
// Counters only grow; a snapshot (Runtime::metrics()) reads each with a
// relaxed load, so counters of one snapshot are each exact but not taken at
// one instant. Gauges (depths) are samples.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weft {

/// Buckets of the poll-duration histogram: bucket i counts steps that took
/// at most 2^i microseconds (and more than 2^(i-1), for i > 0); the last
/// bucket counts everything longer than 2^(kPollTimeBuckets-2) µs (~0.5 s).
inline constexpr std::size_t kPollTimeBuckets = 21;
/// Upper bound of bucket `i` in nanoseconds (the last bucket's is infinite).
constexpr std::uint64_t poll_time_bucket_bound_ns(std::size_t i) noexcept {
  return std::uint64_t{1000} << i;
}

/// Counters of one worker (see RuntimeMetrics). Cheap enough to leave on.
struct WorkerMetrics {
  std::uint64_t tasks_spawned = 0;
  /// Task steps this worker ran (Tokio's poll count): stealable and
  /// loop-affine tasks alike.
  std::uint64_t steps_polled = 0;
  std::uint64_t steal_attempts = 0;
  /// Steal operations that took at least one task.
  std::uint64_t steal_successes = 0;
  /// Tasks moved by those operations.
  std::uint64_t tasks_stolen = 0;
  /// Times the worker blocked in its selector for want of work.
  std::uint64_t parks = 0;
  std::uint64_t remote_wakeups = 0;
  /// Readiness events the selector reported.
  std::uint64_t io_events = 0;
  /// I/O operations by kind: readiness callbacks run for a readable and a
  /// writable fd (epoll: sock_recv, accept, connect, datagrams...) and
  /// receive and send requests handed to io_uring (stream transports), and
  /// file reads, writes and fsyncs handed to io_uring (weft::File).
  std::uint64_t io_readable = 0;
  std::uint64_t io_writable = 0;
  std::uint64_t io_ring_recvs = 0;
  std::uint64_t io_ring_sends = 0;
  std::uint64_t io_ring_file_ops = 0;
  /// Timers put on this loop's heap (sleeps, call_later, timeouts).
  std::uint64_t timers_armed = 0;
  /// Time the worker was not blocked in its selector since it started.
  std::chrono::nanoseconds busy_time{0};
  /// Tasks in the worker's stealable run queue.
  std::int64_t local_queue_depth = 0;
  /// Callbacks and loop-affine steps in the loop's last ready batch.
  std::int64_t remote_queue_depth = 0;
  /// Items other threads handed to the loop not yet taken (its inbox).
  std::int64_t inbox_depth = 0;
  std::int64_t timers_pending = 0;
  /// Poll-duration histogram (RunOptions::poll_time_histogram; zeros when off).
  std::array<std::uint64_t, kPollTimeBuckets> poll_time_histogram{};
  /// Sum of the durations counted in the histogram.
  std::chrono::nanoseconds poll_time_sum{0};
};

struct RuntimeMetrics {
  std::vector<WorkerMetrics> workers;
  /// Sum over the workers.
  WorkerMetrics total;
  /// Tasks in the shared injection queue.
  std::int64_t injection_queue_depth = 0;
  std::int64_t tasks_alive = 0;
  std::int64_t blocking_threads_busy = 0;
  std::int64_t blocking_threads_idle = 0;
  /// Whether the poll-duration histograms were collected.
  bool poll_time_histogram = false;
};

/// The metrics in Prometheus's text exposition format (version 0.0.4), every
/// family prefixed `weft_`, per-worker series labelled worker="N" (see
/// docs/observability.md for the list).
std::string prometheus_text(const RuntimeMetrics& metrics);

/// The metrics of the runtime whose worker runs the calling code.
/// @throws RuntimeError outside a runtime's worker (a standalone loop too).
RuntimeMetrics running_runtime_metrics();

}  // namespace weft

// StallWatch: the stall detector of one runtime (RunOptions::stall_threshold).
//
// A thread that wakes every threshold/4 and reads each worker's probe
// (worker_probe.hpp). A worker whose heartbeat has not moved since an
// earlier sample at least `threshold` ago, and that is not idle, is stalled:
// a task step or callback holds it. Each stall is reported once (keyed by
// the heartbeat value), at most one report per stall_report_interval per
// runtime; reports left out are counted in the next one.
//
// The report names the task of the step (read under the runtime's hazard
// pointer, worker_probe.hpp) and carries a backtrace of the worker thread:
// the watchdog signals it with SIGURG (as Go's preemption: a signal nothing
// else uses unless a socket asks for out-of-band notifications), whose
// handler stores backtrace() into the probe. The handler is installed once
// per process, only where SIGURG has its default disposition or is ignored;
// where the program has its own, or the worker does not answer within the
// wait, the report says so instead of a backtrace.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::detail {

class Scheduler;

class StallWatch {
 public:
  /// Starts the watchdog thread.
  explicit StallWatch(Scheduler& scheduler);
  /// Stops and joins it (before the workers are joined).
  ~StallWatch();
  StallWatch(const StallWatch&) = delete;
  StallWatch& operator=(const StallWatch&) = delete;

 private:
  struct Seen {
    std::uint64_t heartbeat = 0;
    std::int64_t since_ns = 0;  // when this heartbeat value was first seen
    bool reported = false;
  };
  void main();
  void check(std::int64_t now_ns);
  void report(unsigned worker, std::int64_t stalled_ns);

  Scheduler& scheduler_;
  std::vector<Seen> seen_;
  std::int64_t last_report_ns_ = 0;
  std::uint64_t suppressed_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace weft::detail

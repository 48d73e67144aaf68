// StallReport: what the stall detector (RunOptions::stall_threshold) says
// about a worker that has not come back to its loop for too long (Seastar's
// reactor stall report): which task's step holds it, for how long, and a
// backtrace of the worker's thread taken while it was stalled.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace weft {

struct StallReport {
  unsigned worker = 0;
  /// The task whose step holds the worker; 0 and empty when the worker is
  /// not in a task step (a callback, or the loop itself).
  std::uint64_t task_id = 0;
  std::string task_name;
  /// How long the worker had been away from its loop when it was reported
  /// (the detector samples every threshold/4, so this is a lower bound
  /// accurate to that period; the stall may go on after the report).
  std::chrono::nanoseconds stalled_for{0};
  /// The worker thread's frames, innermost first, as "function+offset
  /// (module)"; empty when no backtrace could be taken (see `note`).
  std::vector<std::string> backtrace;
  /// Why the backtrace is missing or may not show the stall, else empty.
  std::string note;
  /// With RunOptions::stall_await_chain: the task's await chain at its last
  /// suspension (before the stalled step), outermost frame first, each as
  /// "function  file:line", then "awaits <what>"; empty without that option,
  /// outside a task step, or for a task's first step.
  std::vector<std::string> await_chain;
  /// Reports left out since the previous one by the rate limit.
  std::uint64_t suppressed = 0;

  /// The report as written to stderr when RunOptions::on_stall is unset.
  std::string to_string() const;
};

}  // namespace weft

// Spinning before blocking, shared by the two places that wait briefly for a
// hand-off from another thread: a loop expecting an offload's completion
// (loop_impl.hpp, "Offload hand-offs") and a blocking-pool thread out of work
// (thread_pool_executor.cpp). Spinning pays only while the two threads run on
// different CPUs; measured on the 2-vCPU VM (bench/results/offload-*), a
// tight pause loop made every spin fail (the vCPUs seem to lose the CPU on
// pause-loop exits) and sched_yield let the spinner queue behind other
// runnable threads, so the loop below reads the clock between polls and
// issues the spin-wait hint only every fourth poll.
#pragma once

#include <weft/detail/cpu_relax.hpp>

#include <algorithm>
#include <chrono>

namespace weft::detail {

/// Polls `done()` until it returns true (then true) or the steady clock
/// passes `until` (then false).
template <class Done>
bool spin_until(std::chrono::steady_clock::time_point until, Done&& done) noexcept {
  for (unsigned i = 1;; ++i) {
    if (done()) return true;
    if (i % 4 == 0) cpu_relax();
    if (std::chrono::steady_clock::now() >= until) return false;
  }
}

/// How often to spin when spinning keeps failing (the hand-off comes later
/// than the spin, or the machine is too busy for the two threads to meet):
/// after the n-th fruitless spin in a row the next 2^n - 1 chances to spin
/// are skipped (n <= 8), so such a workload pays for one spin in 256; a spin
/// that succeeds resets it. Not thread-safe: its owner's (a loop's owner
/// thread; the pool's mutex).
class SpinBackoff {
 public:
  /// Whether to spin at this chance; each call uses one.
  bool should_spin() noexcept {
    if (to_skip_ == 0) return true;
    --to_skip_;
    return false;
  }
  void record(bool succeeded) noexcept {
    if (succeeded) {
      failures_ = 0;
      return;
    }
    failures_ = std::min(failures_ + 1, 8u);
    to_skip_ = (1u << failures_) - 1;
  }

 private:
  unsigned failures_ = 0;  // fruitless spins in a row
  unsigned to_skip_ = 0;   // chances left that do not spin
};

}  // namespace weft::detail

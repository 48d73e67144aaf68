// weft::run()'s SIGINT handling (RunOptions::handle_sigint; the contract is
// in <weft/signals.hpp>), implemented in io/src/signals.cpp.
#pragma once

#include <weft/task.hpp>

#include <exception>
#include <memory>

namespace weft {
class Runtime;
}  // namespace weft

namespace weft::detail {

/// SIGINT handling for the duration of one run(). make_run_interrupt() runs
/// on run()'s thread before the Runtime starts its workers (so they inherit
/// the signal mask it sets there); the object is destroyed after the
/// Runtime, on that same thread, and undoes it.
class RunInterrupt {
 public:
  virtual ~RunInterrupt() = default;
  /// Starts watching for SIGINT on `runtime`'s loops on behalf of `main`.
  virtual void arm(Runtime& runtime, TaskRef main) = 0;
  /// Disarms (calling thread, workers still running); returns the
  /// KeyboardInterrupt run() must throw, or null.
  virtual std::exception_ptr finish(TaskRef main) = 0;
};

/// run()'s SIGINT handling, or null where run() leaves SIGINT alone: not
/// the process's main thread, SIGINT not at its default disposition, or a
/// weft handler (add_signal_handler) holds it.
std::unique_ptr<RunInterrupt> make_run_interrupt();

}  // namespace weft::detail

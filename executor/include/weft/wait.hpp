// wait(): asyncio.wait. Waits for a set of tasks without raising their errors
// and without cancelling anything.
//
//   auto [done, pending] = co_await weft::wait(tasks, {.return_when =
//   weft::ReturnWhen::FIRST_COMPLETED});
//
// return_when: ALL_COMPLETED (default; failed tasks count as done, WAIT-01),
// FIRST_COMPLETED (as soon as one finishes; `done` may hold several that
// finished in the same iteration, WAIT-02), FIRST_EXCEPTION (as soon as one
// raises, also when one had already failed; ALL_COMPLETED if none raises,
// WAIT-03). With a timeout, returns when it passes, leaving the pending tasks
// running (WAIT-04). Duplicates are de-duplicated; `done` and `pending` keep
// input order. Cancelling the task sitting in wait() does not cancel the
// tasks it waits on (WAIT-05). Even when everything is already done, wait()
// gives up one loop iteration (asyncio: the done callbacks are queued).
// Must be awaited inside a task.
//
// @throws ValueError for an empty input; CancelledError if the awaiting task
//         is cancelled; RuntimeError outside a task.
#pragma once

#include <weft/coro.hpp>
#include <weft/event_loop.hpp>
#include <weft/outcome.hpp>
#include <weft/task.hpp>

#include <optional>
#include <utility>
#include <vector>

namespace weft {

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };

struct WaitOptions {
  ReturnWhen return_when = ReturnWhen::ALL_COMPLETED;
  /// Empty: no timeout. Never cancels anything when it passes.
  std::optional<Duration> timeout = std::nullopt;
};

template <class T>
struct WaitResult {
  std::vector<Task<T>> done;
  std::vector<Task<T>> pending;
};

namespace detail {

/// Waits until `fs` (distinct, non-empty) satisfy `options` (asyncio's _wait).
Coro<void> wait_states(std::vector<StateRef<FutureBase>> fs, WaitOptions options);

}  // namespace detail

/// asyncio.wait(tasks, timeout=, return_when=).
template <class T>
Coro<WaitResult<T>> wait(std::vector<Task<T>> tasks, WaitOptions options = {}) {
  if (tasks.empty()) throw ValueError("Set of Tasks/Futures is empty.");
  std::vector<Task<T>> unique;
  std::vector<detail::StateRef<detail::FutureBase>> states;
  for (Task<T>& t : tasks) {
    if (!t.valid()) throw InvalidStateError("wait: empty (moved-from) Task handle");
    bool seen = false;
    for (const Task<T>& u : unique) seen = seen || u == t;
    if (seen) continue;
    states.emplace_back(t.state_ptr());
    unique.push_back(std::move(t));
  }
  co_await detail::wait_states(std::move(states), options);
  WaitResult<T> result;
  for (Task<T>& t : unique) (t.done() ? result.done : result.pending).push_back(std::move(t));
  co_return result;
}

}  // namespace weft

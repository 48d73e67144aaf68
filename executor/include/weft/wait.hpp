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
/// asyncio's spellings: `weft::wait(tasks, weft::FIRST_COMPLETED)`.
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

struct WaitOptions {
  ReturnWhen return_when = ReturnWhen::ALL_COMPLETED;
  /// Empty: no timeout. Never cancels anything when it passes.
  std::optional<Duration> timeout = std::nullopt;
};

namespace detail {
template <class T>
struct WaitHandle {
  using type = Task<T>;
};
template <>
struct WaitHandle<TaskRef> {
  using type = TaskRef;
};
}  // namespace detail

/// The done and pending handles, each in input order: Task<T>, or TaskRef
/// for WaitResult<TaskRef> (tasks of different result types).
template <class T>
struct WaitResult {
  using Handle = typename detail::WaitHandle<T>::type;
  std::vector<Handle> done;
  std::vector<Handle> pending;
  /// True if `h` is among the done handles (`result.is_done(reader)`).
  template <class Other>
  bool is_done(const Other& h) const {
    for (const Handle& d : done)
      if (d == h) return true;
    return false;
  }
};

namespace detail {

/// Waits until `fs` (distinct, non-empty) satisfy `options` (asyncio's _wait).
Coro<void> wait_states(std::vector<StateRef<FutureBase>> fs, WaitOptions options);

inline FutureBase* wait_state_of(const TaskRef& t) { return &TaskAccess::core(t)->as_future(); }
template <class T>
FutureBase* wait_state_of(const Task<T>& t) {
  return detail::FutureAccess::state(t);
}
inline bool wait_handle_valid(const TaskRef& t) { return static_cast<bool>(t); }
template <class T>
bool wait_handle_valid(const Task<T>& t) {
  return t.valid();
}

template <class R, class H>
Coro<R> wait_handles(std::vector<H> tasks, WaitOptions options) {
  if (tasks.empty()) throw ValueError("Set of Tasks/Futures is empty.");
  std::vector<H> unique;
  std::vector<StateRef<FutureBase>> states;
  for (H& t : tasks) {
    if (!wait_handle_valid(t)) throw InvalidStateError("wait: empty (moved-from) Task handle");
    bool seen = false;
    for (const H& u : unique) seen = seen || u == t;
    if (seen) continue;
    states.emplace_back(wait_state_of(t));
    unique.push_back(std::move(t));
  }
  co_await wait_states(std::move(states), options);
  R result;
  for (H& t : unique) (t.done() ? result.done : result.pending).push_back(std::move(t));
  co_return result;
}
}  // namespace detail

/// asyncio.wait(tasks, timeout=, return_when=).
template <class T>
Coro<WaitResult<T>> wait(std::vector<Task<T>> tasks, WaitOptions options = {}) {
  return detail::wait_handles<WaitResult<T>>(std::move(tasks), options);
}
/// asyncio.wait(tasks, return_when=...).
template <class T>
Coro<WaitResult<T>> wait(std::vector<Task<T>> tasks, ReturnWhen return_when) {
  return detail::wait_handles<WaitResult<T>>(std::move(tasks),
                                             WaitOptions{return_when, std::nullopt});
}

/// asyncio.wait over tasks of different result types ("whichever comes first,
/// the reader or the heartbeat"):
///
///   std::vector<weft::TaskRef> both{reader, heartbeat};  // named: GCC 12 rejects a
///   auto r = co_await weft::wait(both, weft::FIRST_COMPLETED);  // braced list here
///   if (r.is_done(reader)) ...
///
/// `done` and `pending` hold TaskRefs, which compare equal to the Task they
/// were made from.
inline Coro<WaitResult<TaskRef>> wait(std::vector<TaskRef> tasks, WaitOptions options = {}) {
  return detail::wait_handles<WaitResult<TaskRef>>(std::move(tasks), options);
}
inline Coro<WaitResult<TaskRef>> wait(std::vector<TaskRef> tasks, ReturnWhen return_when) {
  return detail::wait_handles<WaitResult<TaskRef>>(std::move(tasks),
                                                   WaitOptions{return_when, std::nullopt});
}

}  // namespace weft

// timeout() and timeout_at(): asyncio.timeout / asyncio.timeout_at.
//
//   int v = co_await weft::timeout(50ms, [](weft::Timeout& t) -> weft::Coro<int> {
//     co_return co_await slow();
//   });
//
// The body (a callable taking Timeout& and returning Coro<R>) runs inline in
// the calling task. When the deadline passes, that task is cancelled; if
// what it awaits has just completed (it is already resuming with the result),
// that await returns its result and the cancellation reaches the task's next
// suspension, so a result ready when the deadline fires is returned, never
// discarded. If that
// cancellation is what ends the body, TimeoutError is raised instead, with
// the CancelledError nested in it (std::nested_exception, asyncio's
// __cause__) (TMO-01). Conversion rule (TMO-04): only a timeout that expired
// itself and whose uncancel() brings the task's cancel count back to its value
// on entry converts; an outside cancel() (TMO-06) or an enclosing timeout's
// cancellation passes through as CancelledError. Other exceptions pass through
// unchanged (TMO-05). A deadline at or before now still starts the body; its
// first suspension is cancelled (TMO-03). std::nullopt never expires (TMO-02).
//
// Thread safety: the expiry callback runs on the loop that armed it, while the
// task may run on another worker. Timeout's members may be called from the
// body (any thread the task runs on).
//
// @throws RuntimeError when awaited outside a task.
//
// GCC 12 caveat: a lambda temporary whose captures have non-trivial
// destructors (a Future, a std::string, a shared_ptr) must not be created
// inside the co_await expression itself: GCC 12 destroys such closure (and
// aggregate) temporaries twice. Bind the Coro first, or capture by reference:
//
//   auto c = weft::timeout(1s, [fut](weft::Timeout& t) -> weft::Coro<void> { ... });
//   co_await std::move(c);
#pragma once

#include <weft/coro.hpp>
#include <weft/event_loop.hpp>
#include <weft/sleep.hpp>
#include <weft/task.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace weft {
namespace detail {

/// The shared state of one timeout. Invariants: every field is guarded by
/// mu_; the expiry callback cancels the task while holding mu_, so exit()
/// (which takes mu_ before uncancel()) never misses a cancellation it must
/// withdraw. A callback from an older reschedule() (generation mismatch) does
/// nothing. Lock order: mu_, then the task's cancellation lock.
class TimeoutState : public std::enable_shared_from_this<TimeoutState> {
 public:
  enum class Phase { created, active, expiring, expired, finished };

  /// __aenter__: records the task and its cancel count, arms the deadline.
  /// @throws RuntimeError outside a task or if already entered.
  void enter(std::optional<TimePoint> when);
  /// __aexit__: disarms; returns the exception to propagate (may be null):
  /// TimeoutError (nesting the CancelledError) under the TMO-04 rule, else
  /// `error` unchanged.
  std::exception_ptr exit(std::exception_ptr error);

  std::optional<TimePoint> when() const;
  /// @throws RuntimeError unless active (TMO-08).
  void reschedule(std::optional<TimePoint> when);
  bool expired() const;

 private:
  void arm_locked(std::optional<TimePoint> when);
  void on_timeout(std::uint64_t generation);

  mutable std::mutex mu_;
  Phase phase_ = Phase::created;
  std::optional<TimePoint> when_;
  Handle handle_;
  std::uint64_t generation_ = 0;
  TaskRef task_;
  int cancelling_on_entry_ = 0;
};

}  // namespace detail

/// The handle a timeout body receives (asyncio.Timeout). Valid only while
/// the body runs.
class Timeout {
 public:
  explicit Timeout(std::shared_ptr<detail::TimeoutState> state) noexcept
      : state_(std::move(state)) {}
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;

  /// The deadline on the loop's clock; empty when disabled.
  std::optional<TimePoint> when() const { return state_->when(); }
  /// Moves the deadline (std::nullopt disables it). A deadline already past
  /// expires at the next loop iteration.
  /// @throws RuntimeError once the timeout is expiring ("Cannot change state
  ///         of expiring Timeout").
  void reschedule(std::optional<TimePoint> when) { state_->reschedule(when); }
  /// True once the deadline passed and the task was cancelled for it.
  bool expired() const { return state_->expired(); }

 private:
  std::shared_ptr<detail::TimeoutState> state_;
};

namespace detail {

template <class F>
concept TimeoutBody = std::invocable<F&, Timeout&> && requires {
  typename std::invoke_result_t<F&, Timeout&>::value_type;
} && std::same_as<std::invoke_result_t<F&, Timeout&>,
                  Coro<typename std::invoke_result_t<F&, Timeout&>::value_type>>;

template <class F>
using timeout_body_result_t = typename std::invoke_result_t<F&, Timeout&>::value_type;

}  // namespace detail

/// asyncio.timeout_at(when): runs body(timeout) with a deadline on the loop's
/// clock (std::nullopt: none). Returns the body's value.
/// @throws TimeoutError on expiry (see the file comment); what the body throws.
template <class F>
requires detail::TimeoutBody<F> Coro<detail::timeout_body_result_t<F>> timeout_at(
    std::optional<TimePoint> when, F body) {
  using R = detail::timeout_body_result_t<F>;
  auto state = std::make_shared<detail::TimeoutState>();
  Timeout handle(state);
  state->enter(when);
  std::exception_ptr error;
  if constexpr (std::is_void_v<R>) {
    try {
      Coro<void> c = body(handle);
      co_await std::move(c);
    } catch (...) {
      error = std::current_exception();
    }
    if (std::exception_ptr e = state->exit(std::move(error))) std::rethrow_exception(e);
  } else {
    std::optional<R> result;
    try {
      Coro<R> c = body(handle);
      R value = co_await std::move(c);
      result.emplace(std::move(value));
    } catch (...) {
      error = std::current_exception();
    }
    if (std::exception_ptr e = state->exit(std::move(error))) std::rethrow_exception(e);
    co_return std::move(*result);
  }
}

/// asyncio.timeout(delay): timeout_at(loop.time() + delay, body); std::nullopt
/// never expires; a delay <= 0 expires at the body's first suspension.
template <class F>
requires detail::TimeoutBody<F> Coro<detail::timeout_body_result_t<F>> timeout(
    std::optional<Duration> delay, F body) {
  std::optional<TimePoint> when;
  if (delay) when = detail::deadline_after(*delay);
  return timeout_at(when, std::move(body));
}

/// timeout() with any std::chrono duration (e.g. 1.5s).
/// @throws ValueError for a NaN delay.
template <class Rep, class Period, class F>
requires detail::TimeoutBody<F> Coro<detail::timeout_body_result_t<F>> timeout(
    std::chrono::duration<Rep, Period> delay, F body) {
  return timeout(std::optional<Duration>(detail::checked_delay(delay, "timeout")), std::move(body));
}

}  // namespace weft

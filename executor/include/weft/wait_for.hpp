// wait_for() and timeout_at(when, aw): asyncio.wait_for.
//
//   int v = co_await weft::wait_for(fetch(), 100ms);
//
// Returns the awaitable's value if it finishes in time (std::nullopt: no
// timeout, WFOR-01). On timeout the inner task (a Coro argument is wrapped in
// one) is cancelled and wait_for waits until that cancellation has finished,
// its cleanup included, before raising TimeoutError, which nests the inner's
// CancelledError (WFOR-02). If the inner suppresses the cancellation and
// returns a value, that value is returned (WFOR-05); if it raises something
// else, that propagates (WFOR-06). A timeout <= 0 returns an already-done
// result at once, and otherwise cancels the inner (a Coro never starts) and
// awaits it first (WFOR-03, WFOR-04). Cancelling the awaiting task cancels the
// inner too, and that cancellation is never swallowed (WFOR-07).
// wait_for(shield(t), d) cancels only the shield (WFOR-08).
//
// As asyncio 3.12+, this is `async with timeout(d): return await inner`
// (see <weft/timeout.hpp>). Must be awaited inside a task.
// @throws TimeoutError; CancelledError; what the inner throws.
#pragma once

#include <weft/coro.hpp>
#include <weft/future.hpp>
#include <weft/outcome.hpp>
#include <weft/timeout.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <utility>

namespace weft {
namespace detail {

/// asyncio's _cancel_and_wait: cancels `fut` and waits until it is done.
/// Cancelling the caller stops the wait, not `fut`'s cancellation.
Coro<void> cancel_and_wait(StateRef<FutureBase> fut);

/// The value of the done `fut`; a CancelledError becomes TimeoutError (nesting it).
template <class T>
T value_or_timeout(const Future<T>& fut) {
  try {
    return future_value(fut);
  } catch (const CancelledError&) {
    std::throw_with_nested(TimeoutError());
  }
}

}  // namespace detail

/// asyncio.wait_for(aw, timeout).
template <detail::ComposeAwaitable Aw>
Coro<detail::awaitable_value_t<Aw>> wait_for(Aw aw, std::optional<Duration> timeout) {
  using T = detail::awaitable_value_t<Aw>;
  if constexpr (std::is_same_v<Aw, Coro<T>>) {
    // WFOR-04: with a non-positive timeout a coroutine never starts. It is not
    // even wrapped in a task: with several workers another worker could start
    // that task before the cancellation reached it.
    if (timeout && *timeout <= Duration::zero()) {
      { Aw unstarted = std::move(aw); }
      throw TimeoutError();
    }
  }
  Future<T> fut = detail::to_future(std::move(aw));
  if (!timeout) co_return co_await detail::await_value(std::move(fut));
  if (*timeout <= Duration::zero()) {
    if (!fut.done())
      co_await detail::cancel_and_wait(detail::StateRef<detail::FutureBase>(fut.state_ptr()));
    co_return detail::value_or_timeout(fut);
  }
  Coro<T> inner = weft::timeout(*timeout, [fut](Timeout&) { return detail::await_value(fut); });
  co_return co_await std::move(inner);
}

/// wait_for with a deadline on the loop's clock (std::nullopt: none).
template <detail::ComposeAwaitable Aw>
Coro<detail::awaitable_value_t<Aw>> timeout_at(std::optional<TimePoint> when, Aw aw) {
  using T = detail::awaitable_value_t<Aw>;
  if constexpr (std::is_same_v<Aw, Coro<T>>) {
    // As in wait_for: an expired deadline never starts a coroutine.
    if (when && *when <= get_running_loop().time()) {
      { Aw unstarted = std::move(aw); }
      throw TimeoutError();
    }
  }
  Future<T> fut = detail::to_future(std::move(aw));
  if (!when) co_return co_await detail::await_value(std::move(fut));
  if (*when <= get_running_loop().time()) {
    if (!fut.done())
      co_await detail::cancel_and_wait(detail::StateRef<detail::FutureBase>(fut.state_ptr()));
    co_return detail::value_or_timeout(fut);
  }
  Coro<T> inner = weft::timeout_at(when, [fut](Timeout&) { return detail::await_value(fut); });
  co_return co_await std::move(inner);
}

/// wait_for() with any std::chrono duration (e.g. 1.5s).
/// @throws ValueError for a NaN timeout.
template <detail::ComposeAwaitable Aw, class Rep, class Period>
Coro<detail::awaitable_value_t<Aw>> wait_for(Aw aw, std::chrono::duration<Rep, Period> timeout) {
  return wait_for(std::move(aw),
                  std::optional<Duration>(detail::checked_delay(timeout, "wait_for")));
}

}  // namespace weft

// wait_for() and timeout_at(when, aw): asyncio.wait_for.
//
//   int v = co_await weft::wait_for(fetch(), 100ms);
//
//   int item = co_await weft::wait_for(q.get(), 1s);
//   co_await weft::wait_for(lock.acquire(), 1s);
//
// `aw` is a Coro, Task, Future or any other awaitable. A Coro or awaitable
// runs inline in the awaiting task, as in asyncio 3.12, so what it takes it
// takes only when it resumes: a timed-out q.get() leaves its item queued, a
// timed-out acquire() never leaves the lock held. A Task or Future is awaited
// directly. Returns the awaitable's value if it finishes in time
// (std::nullopt: no timeout, WFOR-01), and also when it finished before the
// deadline's cancellation could reach it (the task was already resuming with
// the value). On timeout the inner is cancelled (a Task: wait_for waits until
// that cancellation has finished, its cleanup included) and TimeoutError is
// raised, nesting the inner's CancelledError (WFOR-02). If the inner suppresses the cancellation
// and returns a value, that value is returned (WFOR-05); if it raises something else, that
// propagates (WFOR-06). A timeout <= 0 returns an already-done result at once, and otherwise
// cancels the inner (a Coro never starts) and awaits it first (WFOR-03, WFOR-04). Cancelling the
// awaiting task cancels the inner too, and that cancellation is never swallowed (WFOR-07).
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

/// Awaits `aw` (kept in the caller's frame) inline: moved out as an rvalue.
template <class T, class Aw>
Coro<T> await_inline(Aw& aw) {
  co_return co_await std::move(aw);
}

/// wait_for (a delay) and timeout_at (a deadline); the deadline is taken when
/// the Coro is first awaited. Neither set: no timeout.
template <class T, class Aw>
Coro<T> wait_until(Aw aw, std::optional<Duration> delay, std::optional<TimePoint> when) {
  bool expired = false;
  if (delay) {
    when = deadline_after(*delay);
    expired = *delay <= Duration::zero();
  } else if (when) {
    expired = *when <= get_running_loop().time();
  }
  if constexpr (is_future_handle_v<Aw>) {
    Future<T> fut = to_future(std::move(aw));
    if (!when) co_return co_await await_value(std::move(fut));
    if (expired) {
      if (!fut.done())
        co_await cancel_and_wait(StateRef<FutureBase>(detail::FutureAccess::state(fut)));
      co_return value_or_timeout(fut);
    }
    // Awaited directly: a timeout cancels what the task awaits, which is this
    // future or task, and then waits for it to finish (WFOR-02).
    Coro<T> inner = weft::timeout_at(when, [&fut](Timeout&) { return await_value(fut); });
    co_return co_await std::move(inner);
  } else {
    // WFOR-04: with an expired deadline a coroutine (or any other awaitable)
    // never starts.
    if (expired) {
      [[maybe_unused]] Aw unstarted = std::move(aw);  // a Coro's frame goes here
      throw TimeoutError();
    }
    if (!when) co_return co_await std::move(aw);
    // Inline in the awaiting task (asyncio 3.12's `async with timeout(): return
    // await aw`): what the awaitable takes, it takes only when it resumes, so a
    // timeout can never discard it (a queue item stays queued, a lock is
    // passed on, see the primitives' cancellation rules).
    Coro<T> inner = weft::timeout_at(when, [&aw](Timeout&) { return await_inline<T>(aw); });
    co_return co_await std::move(inner);
  }
}

}  // namespace detail

/// asyncio.wait_for(aw, timeout): `aw` is a Coro, Task, Future or any other
/// awaitable (`q.get()`, `lock.acquire()`).
template <detail::ComposeAwaitable Aw>
Coro<detail::awaitable_value_t<Aw>> wait_for(Aw aw, std::optional<Duration> timeout) {
  return detail::wait_until<detail::awaitable_value_t<Aw>>(std::move(aw), timeout, std::nullopt);
}

/// wait_for with a deadline on the loop's clock (std::nullopt: none).
template <detail::ComposeAwaitable Aw>
Coro<detail::awaitable_value_t<Aw>> timeout_at(std::optional<TimePoint> when, Aw aw) {
  return detail::wait_until<detail::awaitable_value_t<Aw>>(std::move(aw), std::nullopt, when);
}

/// wait_for() with any std::chrono duration (e.g. 1.5s).
/// @throws ValueError for a NaN timeout.
template <detail::ComposeAwaitable Aw, class Rep, class Period>
Coro<detail::awaitable_value_t<Aw>> wait_for(Aw aw, std::chrono::duration<Rep, Period> timeout) {
  return wait_for(std::move(aw),
                  std::optional<Duration>(detail::checked_delay(timeout, "wait_for")));
}

}  // namespace weft

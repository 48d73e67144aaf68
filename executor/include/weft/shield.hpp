// shield(): asyncio.shield. Cancelling the task that awaits a shield cancels
// only the shield, never the inner task or future.
//
//   int v = co_await weft::shield(task);   // task keeps running if we are cancelled
//
// Passes through the inner's value or exception; an inner already done returns
// at once (SHLD-01). An inner that gets cancelled makes the awaiter raise
// CancelledError (SHLD-02). When the awaiter is cancelled it raises
// CancelledError while the inner keeps running (SHLD-03) and the shield drops
// its callback from the inner, so an exception the inner raises later is
// nobody's: it goes to the loop's exception handler once, when the inner's
// last handle goes (FUT-11, SHLD-05). A Coro argument is wrapped in a task.
// An awaitable that takes something (`q.get()`, `lock.acquire()`) is wrapped
// in a task too, and if that task completes after the awaiter was cancelled,
// what it took goes back (the item to its queue, the permit released:
// detail/give_back.hpp) instead of being dropped as asyncio drops it.
// Must be awaited inside a task.
//
// Implementation (asyncio's shield): an "outer" future mirrors the inner
// through a done callback; an outer done callback removes the inner callback
// once the outer is cancelled. Invariant: both callbacks are registered from
// the awaiting task's loop during one step, so they run on that loop's thread
// one at a time; the callback id is written before either is registered.
// With a give-back, the inner callback stays registered after the outer is
// cancelled, and is the one place the inner's result is given back.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/give_back.hpp>
#include <weft/future.hpp>
#include <weft/outcome.hpp>

#include <memory>
#include <utility>

namespace weft {
namespace detail {

template <class T>
struct ShieldLink {
  Future<T> inner;
  Future<T> outer;
  CallbackId inner_callback = 0;
};

template <class T>
Future<T> shield_outer(Future<T> inner, GiveBack give_back) {
  auto link = std::make_shared<ShieldLink<T>>(ShieldLink<T>{inner, Future<T>(), 0});
  // The inner callback holds only a weak link, so an abandoned shield frees it.
  std::weak_ptr<ShieldLink<T>> weak = link;
  link->inner_callback =
      detail::FutureAccess::state(inner)->add_done_callback([weak, give_back](FutureBase& f) {
        std::shared_ptr<ShieldLink<T>> l = weak.lock();
        if (!l || l->outer.cancelled()) {
          if (give_back) {
            // Nobody will receive the result: it goes back. A failure stays
            // unretrieved and is reported when the inner's last handle goes.
            if (f.status() == FutureStatus::result) give_back(f);
          } else if (!f.cancelled()) {
            (void)f.exception();  // the result is nobody's: mark it retrieved
          }
          return;
        }
        FutureState<T>* out = detail::FutureAccess::state(l->outer);
        if (f.cancelled()) {
          out->cancel(std::string());
        } else if (std::exception_ptr e = f.exception()) {
          out->set_exception_ptr(std::move(e));
        } else if constexpr (std::is_void_v<T>) {
          // The awaiter may cancel the outer between the check above and here.
          if (!out->set_value() && give_back) give_back(f);
        } else if (give_back) {
          // The inner is the shield's own: move its value; it moves only if the
          // outer was still pending, else it goes back.
          if (!out->set_value(std::move(detail::FutureAccess::state(l->inner)->value_ref())))
            give_back(f);
        } else {
          out->set_value(future_value(l->inner));
        }
      });
  Future<T> outer = link->outer;
  // The outer's callback owns the link until the outer completes. Without a
  // give-back it also drops the inner callback: the inner's later outcome
  // is nobody's.
  detail::FutureAccess::state(link->outer)->add_done_callback([link, give_back](FutureBase&) {
    if (!give_back && !link->inner.done()) link->inner.remove_done_callback(link->inner_callback);
  });
  return outer;
}

}  // namespace detail

/// asyncio.shield(aw). @throws what the inner throws; CancelledError if the
/// inner or the awaiting task is cancelled; RuntimeError outside a task.
template <detail::ComposeAwaitable Aw>
Coro<detail::awaitable_value_t<Aw>> shield(Aw aw) {
  using T = detail::awaitable_value_t<Aw>;
  detail::GiveBack give_back = detail::give_back_of(aw);
  Future<T> inner = detail::to_future(std::move(aw));
  if (inner.done()) co_return detail::future_value(inner);  // SHLD-01 shortcut
  Future<T> outer = detail::shield_outer(inner, give_back);
  // An inner outcome mirrored into the outer before the awaiting task was
  // cancelled is returned; the cancellation waits for the next suspension.
  co_return co_await detail::FutureAwaiter<T, true, true>(detail::FutureAccess::state(outer));
}

}  // namespace weft

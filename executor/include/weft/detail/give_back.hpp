// GiveBack: how an awaitable returns what it took when nobody will receive it.
//
// Some awaitables take something from a shared source: Queue::get() an item,
// Lock/Semaphore::acquire() a permit. Awaited directly, or through wait_for /
// timeout (which await inline), each is all or nothing in the caller's task:
// it completes and the caller has the thing, or it raises having taken
// nothing. A composition that runs such an awaitable as a task of its own
// (gather, gather_settled, shield) can stop listening before that task ends:
// gather raises at the first exception and lets the other children finish,
// a cancelled gather or shield raises CancelledError while a child completes.
// The child's result would then belong to nobody: an item gone from the
// queue, a lock held by no task. (asyncio drops it: its gather and shield keep
// the result in a task object the caller never saw.)
//
// Such an awaitable offers `GiveBack weft_give_back() const noexcept`. The
// composition that made the task keeps it, and calls it exactly once for each
// child that completed with a result the composition will not deliver; the
// item goes back to the queue, the permit is released. Invariant: a
// composition calls it only for a task it created itself (the caller holds
// no handle to it, so nobody else can take the result) and only after that
// task completed with a result (status `result`, not an exception, not
// cancelled).
#pragma once

#include <weft/detail/future_state.hpp>

namespace weft::detail {

struct GiveBack {
  /// Moves the result out of `done` (a future that completed with this
  /// awaitable's result) back to `source`. Called on any thread.
  void (*fn)(void* source, FutureBase& done) noexcept = nullptr;
  void* source = nullptr;

  explicit operator bool() const noexcept { return fn != nullptr; }
  void operator()(FutureBase& done) const noexcept { fn(source, done); }
};

/// The awaitable's GiveBack, or an empty one when it takes nothing.
template <class A>
GiveBack give_back_of(const A& awaitable) noexcept {
  if constexpr (requires { awaitable.weft_give_back(); })
    return awaitable.weft_give_back();
  else
    return {};
}

/// A child a composition created from an awaitable that gives back.
struct ChildGiveBack {
  FutureBase* child = nullptr;
  GiveBack give_back;

  /// Gives the child's result back if it completed with one; afterwards this
  /// entry is spent (called at most once).
  void give_back_if_result() noexcept {
    if (give_back && child->status() == FutureStatus::result) {
      give_back(*child);
      give_back = {};
    }
  }
};

}  // namespace weft::detail

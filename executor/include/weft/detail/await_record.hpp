// AwaitRecord: where a Coro frame awaits and what (the await chains of
// <weft/call_graph.hpp>). Every Coro promise is one.
//
// - CoroPromiseBase::await_transform stores the co_await's source location:
//   one pointer store per await, the only cost when nobody asks.
// - An awaiter that suspends the task (weft's own: futures, tasks, sleeps,
//   the sync primitives, foreign awaitables' bridge) calls suspend_at() from
//   its await_suspend: the task's resume point, and in the suspending frame
//   the awaiter's address and how to describe it. That awaiter is the object
//   being awaited (never one it was moved from, as GCC 12 moves awaiters into
//   the frame), and it lives until the await resumes.
// - The chain is read bottom-up by a reader that has every worker paused
//   (call_graph.cpp), from the task's resume point (the innermost frame)
//   through each frame's continuation (the Coro that awaits it), so a
//   co_await of a Coro records nothing more than its location.
#pragma once

#include <weft/await_target.hpp>
#include <weft/detail/task_core.hpp>

#include <coroutine>
#include <cstddef>
#include <source_location>
#include <type_traits>

namespace weft::detail {

/// Fills `out` for the awaiter at `awaiter`.
using AwaitDescribe = void (*)(const void* awaiter, AwaitTarget& out) noexcept;

class AwaitRecord {
 public:
  /// The source location of the frame's last co_await.
  const std::source_location& await_where() const noexcept { return where_; }
  /// What the frame awaits; meaningful only while it is the task's resume
  /// point (a frame suspended in a co_await of a Coro awaits that Coro).
  void describe_awaited(AwaitTarget& out) const noexcept {
    if (describe_) describe_(awaiter_, out);
  }

 protected:
  std::source_location where_{};

 private:
  template <class P, class A>
  friend void suspend_at(TaskCore& task, std::coroutine_handle<P> h, const A& awaiter) noexcept;

  const void* awaiter_ = nullptr;
  AwaitDescribe describe_ = nullptr;
};

/// An awaiter describes itself with a member
/// `void weft_describe_await(AwaitTarget&) const noexcept`; others are
/// AwaitKind::other.
template <class A>
void describe_await(const void* awaiter, AwaitTarget& out) noexcept {
  if constexpr (requires(const A& a, AwaitTarget& t) { a.weft_describe_await(t); }) {
    static_cast<const A*>(awaiter)->weft_describe_await(out);
  } else {
    out.kind = AwaitKind::other;
  }
}

/// Whether the call-graph reader may take a frame of promise type P for an
/// AwaitRecord: a Coro's promise (weft::Coro), at the offset that
/// std::coroutine_handle<CoroPromiseBase> assumes (no over-aligned result).
template <class P>
inline constexpr bool walkable_promise_v = std::is_base_of_v<AwaitRecord, P> &&
                                           alignof(P) <= 2 * sizeof(void*);

/// From `awaiter`'s await_suspend, for the running `task` about to suspend
/// in the frame `h`: records the resume point and, in a Coro frame, what
/// that frame awaits.
template <class P, class A>
void suspend_at(TaskCore& task, std::coroutine_handle<P> h, const A& awaiter) noexcept {
  if constexpr (walkable_promise_v<P>) {
    AwaitRecord& r = h.promise();
    r.awaiter_ = &awaiter;
    r.describe_ = &describe_await<A>;
    task.set_resume_point(h, /*in_coro=*/true);
  } else {
    task.set_resume_point(h, /*in_coro=*/false);
  }
}

}  // namespace weft::detail

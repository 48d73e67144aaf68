// Offloading blocking and CPU-heavy calls (docs/api.md, offloading):
// EventLoop::run_in_executor and to_thread (asyncio.to_thread).
//
// The function runs on an Executor thread, never on a worker; its value (or
// exception) completes a Future through the cross-thread path, which wakes
// the awaiting task on a worker. Cancelling the awaiter does not stop a call
// already running (as in asyncio): its result is dropped. A call still queued
// when its future is cancelled is skipped.
#pragma once

#include <weft/detail/context.hpp>
#include <weft/event_loop.hpp>
#include <weft/executor.hpp>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace weft {
namespace detail {
/// Called after a submit from `loop`: on the loop's own thread, its next park
/// spins briefly for the completion first (loop_impl.hpp); elsewhere a no-op.
void expect_offload_completion(EventLoop& loop) noexcept;
}  // namespace detail

/// Runs fn() on `executor` (null: the default executor, a ThreadPoolExecutor
/// shared by the runtime's loops) and returns a future for its result. The
/// function sees the caller's ContextVar values.
/// @throws RuntimeError if the executor is shut down.
template <class F>
auto EventLoop::run_in_executor(Executor* executor, F fn) {
  using R = std::invoke_result_t<F&>;
  Future<R> future = create_future<R>();
  std::shared_ptr<Executor> keep;
  if (!executor) {
    keep = default_executor();
    executor = keep.get();
  }
  executor->submit(
      [state = future, fn = std::move(fn), context = detail::current_context()]() mutable {
        if (state.done()) return;  // cancelled before it started
        detail::ContextScope scope(&context);
        try {
          if constexpr (std::is_void_v<R>) {
            fn();
            detail::FutureAccess::state(state)->set_value();
          } else {
            detail::FutureAccess::state(state)->set_value(fn());
          }
        } catch (...) {
          detail::FutureAccess::state(state)->set_exception_ptr(std::current_exception());
        }
      });
  detail::expect_offload_completion(*this);
  return future;
}

/// asyncio.to_thread: runs fn(args...) on the default executor with the
/// caller's context and returns its value or rethrows its exception.
/// @throws RuntimeError outside a running loop.
template <class F, class... A>
auto to_thread(F fn, A... args) -> Coro<std::invoke_result_t<F&, A&...>> {
  auto future = get_running_loop().run_in_executor(
      nullptr, [fn = std::move(fn), args = std::make_tuple(std::move(args)...)]() mutable {
        return std::apply(fn, args);
      });
  co_return co_await std::move(future);
}

}  // namespace weft

// weft::run(): asyncio.run (RUN-01..06 in docs/asyncio-behaviours.md). It is
// at the top (weft::weft) because its SIGINT handling uses weft::io; a
// program that links weft::executor alone runs its main coroutine with
// weft::Runtime::block_on or EventLoop::run_until_complete instead.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/run_interrupt.hpp>
#include <weft/errors.hpp>
#include <weft/runtime.hpp>
#include <weft/signals.hpp>

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace weft {

/// asyncio.run(): starts a Runtime, runs `main` to completion, cancels and
/// awaits every task still pending, shuts the default executor down, joins
/// the workers and returns main's value (or rethrows its exception). With
/// RunOptions::handle_sigint (the default) the first SIGINT cancels main
/// and run() then throws KeyboardInterrupt (<weft/signals.hpp>).
/// @throws RuntimeError when called from a running loop (RUN-02).
template <class T>
T run(Coro<T> main, RunOptions options = {}) {
  if (detail::current_loop()) throw RuntimeError("run: cannot be called from a running event loop");
  if (!main.valid()) throw ValueError("run: a coroutine was expected (got an empty Coro)");
  // Declared first: outlives the runtime, whose threads inherit its signal mask.
  std::unique_ptr<detail::RunInterrupt> interrupt;
  if (options.handle_sigint) interrupt = detail::make_run_interrupt();
  Runtime runtime(options);
  Task<T> task = runtime.spawn(std::move(main));
  if (interrupt) interrupt->arm(runtime, task);
  std::exception_ptr failure;
  try {
    detail::RuntimeAccess::wait_until_done(runtime, task);
  } catch (...) {
    failure = std::current_exception();
  }
  std::exception_ptr interrupted = interrupt ? interrupt->finish(task) : nullptr;
  detail::RuntimeAccess::shutdown_after_main(runtime);
  if (interrupted) std::rethrow_exception(interrupted);
  if (failure) std::rethrow_exception(failure);
  return detail::RuntimeAccess::result(std::move(task));
}

}  // namespace weft

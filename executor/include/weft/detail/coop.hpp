// The cooperative budget (Tokio's coop).
//
// An await that completes without suspending (the get of a queue that is
// never empty, a future already done, a set Event, buffered bytes in a
// StreamReader) never gives the worker back: a task looping on such awaits
// would starve the timers, I/O and other tasks of its loop. Each task step
// therefore starts with a budget (RunOptions::coop_budget, 128 by default
// with several workers); every await that could complete at once consumes
// one unit, and once the budget is spent the next such await suspends
// instead: the task is queued behind what is ready now and completes that
// await when it runs again. Suspending awaits do not consume it (they give
// the worker back anyway).
//
// Invariant: t_coop_budget belongs to the task step running on this thread;
// TaskCore::run sets it on entry and restores the previous value (an eager
// step nests inside its creator's) on exit. Outside a task it is unlimited.
// An awaiter that finds the budget spent still completes exactly once: it
// suspends holding nothing (or a queue reservation it gives back if
// cancelled meanwhile, as when it had to wait). Lock and semaphore acquires
// are not budget points (see permit_core.hpp).
#pragma once

#include <climits>

namespace weft::detail {

/// Unlimited: no budget (outside a task, or turned off).
inline constexpr unsigned kCoopUnlimited = UINT_MAX;

// The budget is a thread_local read only through these out-of-line
// functions: inlined into a coroutine, Clang 16 computes a thread_local's
// address once and keeps it in the frame across suspensions, so after the
// task moved to another worker it would read and write the old thread's
// budget (a data race TSan reports).

/// An awaiter about to complete without suspending calls this: true (one
/// unit consumed) if it may; false once the step's budget is spent, and the
/// awaiter must suspend first.
bool coop_take() noexcept;
/// True once this step's budget is spent (consumes nothing).
bool coop_spent() noexcept;
/// Sets this thread's budget for a step starting now; returns the previous
/// value (an eager step nests inside its creator's and restores it).
unsigned coop_reset(unsigned budget) noexcept;

}  // namespace weft::detail

// weft::sync umbrella: Lock, Event, Condition, Semaphore, BoundedSemaphore,
// Barrier, Queue family (docs/api.md, sync).
//
// Common contract: every member may be called from any thread; the awaiting
// ones only inside a task. Waiters are served in FIFO order; a waiter that is
// cancelled while waiting, or after being chosen but before it ran, holds
// nothing afterwards (what it was given passes to the next waiter). A
// primitive must outlive every task waiting on it (destroying one with
// waiters is undefined behaviour, as for std::mutex). Uncontended paths are
// one atomic operation (Lock, Semaphore, Event::wait on a set event) or one
// short spin-lock section (Queue), and allocate nothing per operation beyond
// the coroutine frame of calls that return a Coro (taken from the per-worker
// frame free list) and a Queue container's amortised growth.
#pragma once

#include <weft/barrier.hpp>
#include <weft/condition.hpp>
#include <weft/event.hpp>
#include <weft/lock.hpp>
#include <weft/queue.hpp>
#include <weft/semaphore.hpp>

// AwaitTarget: what a suspended coroutine awaits, as the await chains of
// weft::capture_call_graph() report it (docs/observability.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace weft {

enum class AwaitKind : std::uint8_t {
  none,       // not suspended in an await (running, or not started)
  coroutine,  // another Coro, run inline: the chain goes on into it
  future,     // a Future
  task,       // another Task (task_id says which)
  sleep,      // weft::sleep (delay; deadline once armed)
  lock,       // Lock::acquire()
  semaphore,  // Semaphore / BoundedSemaphore::acquire()
  condition,  // Condition::wait()
  event,      // Event::wait()
  queue_get,  // Queue::get()
  queue_put,  // Queue::put()
  other,      // a foreign awaitable, or one that does not describe itself
};

const char* to_string(AwaitKind kind) noexcept;

struct AwaitTarget {
  AwaitKind kind = AwaitKind::none;
  /// The identity of what is awaited: the Lock, Semaphore, Condition, Event
  /// or queue object, the future's state, the awaited task's state. Compare
  /// it, print it; do not dereference it.
  const void* object = nullptr;
  /// kind == task: the awaited task's id.
  std::uint64_t task_id = 0;
  /// kind == sleep.
  std::optional<std::chrono::nanoseconds> delay;
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

}  // namespace weft

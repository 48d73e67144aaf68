// The process-wide count of live task states (detail::live_task_count), kept
// in per-thread slots: see live_tasks.cpp.
#pragma once

#include <cstdint>

namespace weft::detail {

/// Adds `delta` (+1 at a TaskCore's construction, -1 at its destruction) to
/// the calling thread's slot.
void live_tasks_add(std::int64_t delta) noexcept;

}  // namespace weft::detail

// ThreadSanitizer annotations for what TSan cannot see by itself; the
// suppressions built into TSan binaries are in tsan.cpp.
#pragma once

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace weft::detail {

/// Tell ThreadSanitizer about a hand-off through a moodycamel queue, whose
/// fence-based synchronisation it does not model: what a producer did before
/// tsan_handoff_release(q) happens before what a consumer does after
/// tsan_handoff_acquire(q) once it dequeued the item. No-ops without TSan.
#if defined(__SANITIZE_THREAD__)
inline void tsan_handoff_release(void* queue) noexcept { __tsan_release(queue); }
inline void tsan_handoff_acquire(void* queue) noexcept { __tsan_acquire(queue); }
#else
inline void tsan_handoff_release(void*) noexcept {}
inline void tsan_handoff_acquire(void*) noexcept {}
#endif

}  // namespace weft::detail

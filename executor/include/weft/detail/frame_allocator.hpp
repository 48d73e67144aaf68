// Per-thread free lists for coroutine frames and task states.
//
// Every task costs at least one allocation (its coroutine frame); a malloc and
// a free on a different thread cost about 100x a thread-local reuse. Blocks
// are cached per thread in size classes of 16 bytes up to kMaxCachedSize; a
// block freed on another thread simply joins that thread's cache (memory
// migrates with stolen tasks, bounded by kMaxCachedPerClass per class). Under
// a sanitizer build the cache is off so that use-after-free stays visible.
#pragma once

#include <cstddef>

namespace weft::detail {

void* frame_allocate(std::size_t size);
void frame_deallocate(void* block, std::size_t size) noexcept;

/// Mix-in giving a class the cached allocator (sized delete required).
struct FrameAllocated {
  static void* operator new(std::size_t size) { return frame_allocate(size); }
  static void operator delete(void* block, std::size_t size) noexcept {
    frame_deallocate(block, size);
  }
};

}  // namespace weft::detail

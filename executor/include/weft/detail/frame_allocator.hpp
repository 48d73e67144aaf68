// Per-thread free lists for coroutine frames and task states.
//
// Every task costs at least one allocation (its coroutine frame); a malloc and
// a free on a different thread cost about 100x a thread-local reuse. Blocks
// are cached per thread in size classes 16 bytes apart up to kMaxCachedSize; a
// block freed on another thread simply joins that thread's cache (memory
// migrates with stolen tasks, bounded by kMaxCachedPerClass per class). Under
// a sanitizer build the cache is off so that use-after-free stays visible.
#pragma once

#include <cstddef>
#include <cstring>

namespace weft::detail {

void* frame_allocate(std::size_t size);
void frame_deallocate(void* block, std::size_t size) noexcept;

// A Coro's frame block: [task room][word][frame].
//
// A task is one allocation: every Coro frame is allocated with room in front
// of it for a task state, and create_task constructs its task's state there
// (task.hpp), since when an async function is called nothing can know yet
// whether its frame will be a task's root or awaited inline. An inline frame
// leaves the room unused. `word`, the 8 bytes just before the frame, holds the
// frame's size and whether a task state owns the block:
// - not owned: destroying the frame frees the block (coro_frame_deallocate);
// - owned: destroying the frame (when the task finishes) frees nothing; the
//   task state frees the whole block when its last reference goes
//   (release_task_block), so a Task handle outlives the frame.
// The frame's address is the block operator new returned plus the room (the
// coroutine ABI of Clang and GCC: the handle's address is the allocation). A
// root frame is never elided into its caller's stack: its handle escapes into
// the task.
inline constexpr std::size_t kTaskRoom = 168;  // room for a task state (task.hpp)
inline constexpr std::size_t kFramePrefix = kTaskRoom + sizeof(std::size_t);
static_assert(kFramePrefix % 16 == 0, "a frame keeps the allocator's 16-byte alignment");

namespace frame_word {
inline constexpr std::size_t kTaskOwned = 1;
inline std::size_t load(const void* frame) noexcept {
  std::size_t w;
  std::memcpy(&w, static_cast<const unsigned char*>(frame) - sizeof w, sizeof w);
  return w;
}
inline void store(void* frame, std::size_t w) noexcept {
  std::memcpy(static_cast<unsigned char*>(frame) - sizeof w, &w, sizeof w);
}
}  // namespace frame_word

inline void* coro_frame_allocate(std::size_t size) {
  void* frame = static_cast<unsigned char*>(frame_allocate(size + kFramePrefix)) + kFramePrefix;
  frame_word::store(frame, size << 1);
  return frame;
}
inline void coro_frame_deallocate(void* frame, std::size_t size) noexcept {
  if (frame_word::load(frame) & frame_word::kTaskOwned) return;  // the task state frees it
  frame_deallocate(static_cast<unsigned char*>(frame) - kFramePrefix, size + kFramePrefix);
}
/// create_task: `frame` becomes a task's root; returns the room for its state.
inline void* claim_task_room(void* frame) noexcept {
  frame_word::store(frame, frame_word::load(frame) | frame_word::kTaskOwned);
  return static_cast<unsigned char*>(frame) - kFramePrefix;
}
/// The task state constructed in `room` was destroyed (and its frame before
/// it): frees the block.
inline void release_task_block(void* room) noexcept {
  void* frame = static_cast<unsigned char*>(room) + kFramePrefix;
  frame_deallocate(room, (frame_word::load(frame) >> 1) + kFramePrefix);
}

/// Mix-in giving a class the cached allocator (sized delete required).
struct FrameAllocated {
  static void* operator new(std::size_t size) { return frame_allocate(size); }
  static void operator delete(void* block, std::size_t size) noexcept {
    frame_deallocate(block, size);
  }
};

}  // namespace weft::detail

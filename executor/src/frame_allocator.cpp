#include <weft/detail/frame_allocator.hpp>

#include <cstdlib>
#include <new>

namespace weft::detail {
namespace {

// Class c holds blocks of (c + 1) * 16 - 8 bytes: what a glibc malloc chunk
// of (c + 1) * 16 bytes holds (its 8-byte header included), so a cached
// block wastes nothing to rounding (a 16-byte multiple wasted 16 bytes).
constexpr std::size_t kGranule = 16;
constexpr std::size_t kMaxCachedSize = 1024;
constexpr std::size_t kClasses = (kMaxCachedSize + 7) / kGranule + 1;
// A thread caches at most this many bytes of free blocks, over all classes;
// a block freed past it goes back to malloc. The bound is in bytes because
// the cache fills wherever blocks are freed, not where they were made: a
// connection handler's frame is allocated by the accepting loop and freed by
// whichever worker finished it, so a worker that mostly frees would otherwise
// keep its lists full of blocks only another thread asks for (a per-class
// count of 4096 held tens of MiB at 8 workers under the chaos soak). A task
// block is about 320 bytes, so the budget keeps several hundred of them: the
// churn of spawn, chained spawn and handler frames stays in the cache, while
// a burst of a million live tasks goes to malloc whatever the bound.
// Unused in sanitized builds (no cache there; Clang: -Wunused-const-variable).
[[maybe_unused]] constexpr std::size_t kMaxCachedBytesPerThread = 256 * 1024;

struct FreeBlock {
  FreeBlock* next;
};

// Owned by one thread; blocks left at thread exit go back to the heap.
struct ThreadCache {
  FreeBlock* heads[kClasses] = {};
  std::size_t bytes = 0;  // sum of the cached blocks' sizes
  ~ThreadCache() {
    for (auto* head : heads) {
      while (head) {
        FreeBlock* next = head->next;
        std::free(head);
        head = next;
      }
    }
  }
};

#ifndef WEFT_SANITIZED
thread_local ThreadCache t_cache;
#endif

[[maybe_unused]] std::size_t class_of(std::size_t size) { return (size + 7) / kGranule; }
[[maybe_unused]] std::size_t block_size(std::size_t c) { return (c + 1) * kGranule - 8; }

}  // namespace

void* frame_allocate(std::size_t size) {
#ifndef WEFT_SANITIZED
  if (size <= kMaxCachedSize) {
    std::size_t c = class_of(size);
    if (FreeBlock* b = t_cache.heads[c]) {
      t_cache.heads[c] = b->next;
      t_cache.bytes -= block_size(c);
      return b;
    }
    size = block_size(c);
  }
#endif
  void* p = std::malloc(size);
  if (!p) throw std::bad_alloc();
  return p;
}

void frame_deallocate(void* block, std::size_t size) noexcept {
  if (!block) return;
#ifndef WEFT_SANITIZED
  if (size <= kMaxCachedSize) {
    std::size_t c = class_of(size);
    if (t_cache.bytes + block_size(c) <= kMaxCachedBytesPerThread) {
      auto* b = static_cast<FreeBlock*>(block);
      b->next = t_cache.heads[c];
      t_cache.heads[c] = b;
      t_cache.bytes += block_size(c);
      return;
    }
  }
#else
  (void)size;
#endif
  std::free(block);
}

}  // namespace weft::detail

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
// Unused in sanitized builds (no cache there; Clang: -Wunused-const-variable).
[[maybe_unused]] constexpr std::size_t kMaxCachedPerClass = 4096;

struct FreeBlock {
  FreeBlock* next;
};

// Owned by one thread; blocks left at thread exit go back to the heap.
struct ThreadCache {
  FreeBlock* heads[kClasses] = {};
  std::size_t counts[kClasses] = {};
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
      --t_cache.counts[c];
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
    if (t_cache.counts[c] < kMaxCachedPerClass) {
      auto* b = static_cast<FreeBlock*>(block);
      b->next = t_cache.heads[c];
      t_cache.heads[c] = b;
      ++t_cache.counts[c];
      return;
    }
  }
#else
  (void)size;
#endif
  std::free(block);
}

}  // namespace weft::detail

#include "local_queue.hpp"

#include <weft/errors.hpp>

namespace weft::detail {

LocalQueue::LocalQueue(std::uint32_t capacity) {
  if (capacity < 2 || (capacity & (capacity - 1)) != 0)
    throw ValueError("local run queue capacity must be a power of two >= 2, got " +
                     std::to_string(capacity));
  mask_ = capacity - 1;
  buffer_ = std::make_unique<std::atomic<TaskCore*>[]>(capacity);
}

std::uint32_t LocalQueue::len() const noexcept {
  std::uint64_t head = head_.load(std::memory_order_acquire);
  std::uint32_t tail = tail_.load(std::memory_order_acquire);
  return tail - real_of(head);
}

TaskCore* LocalQueue::pop() noexcept {
  std::uint64_t head = head_.load(std::memory_order_acquire);
  for (;;) {
    std::uint32_t steal = steal_of(head), real = real_of(head);
    std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    if (real == tail) return nullptr;
    std::uint32_t next_real = real + 1;
    std::uint64_t next = steal == real ? pack(next_real, next_real) : pack(steal, next_real);
    // ordering: acq_rel — acquire to read the slot after a thief's release, release so
    // our claim is visible before we return the task.
    if (head_.compare_exchange_weak(head, next, std::memory_order_acq_rel,
                                    std::memory_order_acquire))
      return buffer_[real & mask_].load(std::memory_order_relaxed);
  }
}

TaskCore* LocalQueue::steal_into(LocalQueue& dst, std::uint32_t& stolen) noexcept {
  stolen = 0;
  std::uint32_t dst_tail = dst.tail_.load(std::memory_order_relaxed);  // dst is ours
  std::uint32_t dst_steal = steal_of(dst.head_.load(std::memory_order_acquire));
  if (dst_tail - dst_steal > dst.capacity() / 2) return nullptr;  // no room for half of a victim

  // Phase 1: claim [real, real + n).
  std::uint64_t prev = head_.load(std::memory_order_acquire);
  std::uint64_t next;
  std::uint32_t n;
  for (;;) {
    std::uint32_t src_steal = steal_of(prev), src_real = real_of(prev);
    if (src_steal != src_real) return nullptr;  // another thief is active
    // ordering: acquire pairs with the owner's tail_ release: the slots are written.
    std::uint32_t src_tail = tail_.load(std::memory_order_acquire);
    n = src_tail - src_real;
    n -= n / 2;
    if (n == 0) return nullptr;
    if (n > dst.capacity() / 2) n = dst.capacity() / 2;
    next = pack(src_steal, src_real + n);
    if (head_.compare_exchange_weak(prev, next, std::memory_order_acq_rel,
                                    std::memory_order_acquire))
      break;
  }
  // Phase 2: copy into dst.
  std::uint32_t first = steal_of(next);
  for (std::uint32_t i = 0; i < n; ++i) {
    TaskCore* t = buffer_[(first + i) & mask_].load(std::memory_order_relaxed);
    dst.buffer_[(dst_tail + i) & dst.mask_].store(t, std::memory_order_relaxed);
  }
  // Phase 3: release the claim (the owner may have popped meanwhile, moving real).
  prev = next;
  for (;;) {
    std::uint32_t real = real_of(prev);
    if (head_.compare_exchange_weak(prev, pack(real, real), std::memory_order_acq_rel,
                                    std::memory_order_acquire))
      break;
  }
  stolen = n;
  // Run the last stolen task now; publish the rest in dst.
  --n;
  TaskCore* ret = dst.buffer_[(dst_tail + n) & dst.mask_].load(std::memory_order_relaxed);
  if (n > 0) dst.tail_.store(dst_tail + n, std::memory_order_release);
  return ret;
}

}  // namespace weft::detail

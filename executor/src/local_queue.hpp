// LocalQueue: a worker's bounded run queue of stealable tasks.
//
// Single producer (the owner pushes at tail_), multiple consumers (the owner
// pops at the head, thieves steal half from the head). Layout after Tokio's
// queue: head_ packs two 32-bit indices, `steal` (where an in-progress steal
// started) and `real` (the next task to pop); they differ only while a thief
// copies tasks out. Indices grow without bound and wrap; slot = index & mask.
//
// - Owner push: writes the slot, then publishes tail_ (release). When the
//   queue is full and no steal is in progress it moves half of the queue to
//   the overflow sink in one CAS on head_ (the overflow path); if a steal is
//   in progress it sends the task itself to the overflow sink.
// - Pop (owner): CAS real forward; steal moves along when no thief is active.
// - Steal: (1) CAS real forward by half, leaving steal behind, which claims
//   the range [steal, real) and keeps the owner from overwriting it; (2) copy
//   the range into the thief's own queue; (3) CAS steal up to real. Only one
//   steal at a time per queue (a thief that sees steal != real backs off).
// - Slots are atomics (relaxed): the acquire/release on head_ and tail_ order
//   the accesses; the atomics only keep the compiler honest.
#pragma once

#include <weft/detail/task_core.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace weft::detail {

class LocalQueue {
 public:
  explicit LocalQueue(std::uint32_t capacity);

  std::uint32_t capacity() const noexcept { return mask_ + 1; }
  /// Approximate from any thread; exact on the owner.
  std::uint32_t len() const noexcept;
  bool empty() const noexcept { return len() == 0; }

  /// Owner only. Calls overflow(task) for each task that did not fit.
  template <class Overflow>
  void push_back(TaskCore* task, Overflow&& overflow);
  /// Owner only.
  TaskCore* pop() noexcept;
  /// Steals about half of this queue into `dst` (the caller's own queue);
  /// returns one stolen task to run now, or null. Called by dst's owner.
  TaskCore* steal_into(LocalQueue& dst, std::uint32_t& stolen) noexcept;

 private:
  static std::uint64_t pack(std::uint32_t steal, std::uint32_t real) noexcept {
    return (static_cast<std::uint64_t>(steal) << 32) | real;
  }
  static std::uint32_t steal_of(std::uint64_t h) noexcept {
    return static_cast<std::uint32_t>(h >> 32);
  }
  static std::uint32_t real_of(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h); }

  std::uint32_t mask_;
  std::unique_ptr<std::atomic<TaskCore*>[]> buffer_;
  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
};

template <class Overflow>
void LocalQueue::push_back(TaskCore* task, Overflow&& overflow) {
  for (;;) {
    // ordering: acquire pairs with a thief's final CAS, so its copy-out of
    // the slots we are about to reuse has finished.
    std::uint64_t head = head_.load(std::memory_order_acquire);
    std::uint32_t steal = steal_of(head), real = real_of(head);
    std::uint32_t tail = tail_.load(std::memory_order_relaxed);  // only we write it
    if (tail - steal < capacity()) {
      buffer_[tail & mask_].store(task, std::memory_order_relaxed);
      tail_.store(tail + 1, std::memory_order_release);
      return;
    }
    if (steal != real) {
      // A thief is copying out; it will free room shortly. Don't wait for it.
      overflow(task);
      return;
    }
    // Full: move half of the queue out in one claim.
    std::uint32_t half = capacity() / 2;
    if (!head_.compare_exchange_strong(head, pack(real + half, real + half),
                                       std::memory_order_acq_rel, std::memory_order_relaxed))
      continue;  // a thief or pop moved head: retry the fast path
    for (std::uint32_t i = 0; i < half; ++i)
      overflow(buffer_[(real + i) & mask_].load(std::memory_order_relaxed));
    overflow(task);
    return;
  }
}

}  // namespace weft::detail

// Live task count: every TaskCore constructed and not yet destroyed, for the
// tests' leak check (tests/support) and anyone diagnosing a leak.
//
// A single process-wide atomic would be one more contended cache line on the
// spawn path (every worker spawning, every worker destroying). Instead each
// thread counts into its own slot, written only by that thread (a relaxed
// load and store, no locked instruction). A task created on one thread and
// destroyed on another adds +1 to one slot and -1 to the other, so a slot may
// be negative; only the sum means anything.
//
// Slots are never freed. A thread that exits puts its slot, count included,
// on a free list (under g_free_lock), and the next thread to need one takes
// it: the number of slots is the most threads that ever counted at once, and
// the mutex orders the old owner's last store before the new owner's first.
// A task destroyed by a thread_local destructor that runs after this
// thread's slot went back counts into g_orphans instead.
//
// live_task_count() sums every slot: exact when the threads that counted are
// joined or otherwise synchronised with the caller (a test's end), a snapshot
// otherwise.
#include "live_tasks.hpp"

#include <weft/detail/task_core.hpp>

#include <atomic>
#include <mutex>

namespace weft::detail {
namespace {

struct alignas(64) Slot {
  std::atomic<std::int64_t> count{0};
  Slot* next_all = nullptr;   // immutable once published in g_all
  Slot* next_free = nullptr;  // guarded by g_free_lock
};

constinit std::atomic<Slot*> g_all{nullptr};
constinit std::mutex g_free_lock;
constinit Slot* g_free = nullptr;  // guarded by g_free_lock
constinit std::atomic<std::int64_t> g_orphans{0};

Slot* take_slot() {
  {
    std::lock_guard<std::mutex> lock(g_free_lock);
    if (Slot* s = g_free) {
      g_free = s->next_free;
      return s;
    }
  }
  auto* s = new Slot;  // never freed: reachable from g_all for the process's life
  Slot* head = g_all.load(std::memory_order_relaxed);
  do {
    s->next_all = head;
    // ordering: release — a reader that sees `s` in the list sees next_all.
  } while (
      !g_all.compare_exchange_weak(head, s, std::memory_order_release, std::memory_order_relaxed));
  return s;
}

constinit thread_local Slot* t_slot = nullptr;
constinit thread_local bool t_slot_returned = false;

// Gives the thread's slot back at thread exit.
struct SlotReturner {
  bool armed = false;
  ~SlotReturner() {
    if (!t_slot) return;
    std::lock_guard<std::mutex> lock(g_free_lock);
    t_slot->next_free = g_free;
    g_free = t_slot;
    t_slot = nullptr;
    t_slot_returned = true;
  }
};
thread_local SlotReturner t_returner;

}  // namespace

void live_tasks_add(std::int64_t delta) noexcept {
  Slot* s = t_slot;
  if (!s) [[unlikely]] {
    if (t_slot_returned) {
      g_orphans.fetch_add(delta, std::memory_order_relaxed);
      return;
    }
    try {
      s = take_slot();
    } catch (...) {  // no memory for a slot: count where no slot is needed
      g_orphans.fetch_add(delta, std::memory_order_relaxed);
      return;
    }
    t_slot = s;
    t_returner.armed = true;  // first use registers its destructor for this thread
  }
  // Only this thread writes its slot: no read-modify-write needed.
  s->count.store(s->count.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

std::int64_t live_task_count() noexcept {
  std::int64_t sum = g_orphans.load(std::memory_order_relaxed);
  // ordering: acquire — pairs with take_slot's release, for next_all.
  for (Slot* s = g_all.load(std::memory_order_acquire); s; s = s->next_all)
    sum += s->count.load(std::memory_order_relaxed);
  return sum;
}

}  // namespace weft::detail

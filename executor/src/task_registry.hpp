// TaskRegistry: every task of a runtime (or standalone loop) that has not
// finished, for all_tasks() and for shutdown, which cancels and awaits them.
// Sharded intrusive lists: insert at launch, erase at finish, each under its
// shard's spin lock (the shard is chosen by task id, so a task stolen to
// another worker erases from the same shard it was inserted in).
#pragma once

#include <weft/detail/future_state.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/detail/task_core.hpp>

#include <atomic>
#include <cstdint>
#include <vector>

namespace weft::detail {

class TaskRegistry {
 public:
  void insert(TaskCore* task) noexcept;
  void erase(TaskCore* task) noexcept;
  /// Calls fn(TaskCore*) for each registered task, with a reference held.
  template <class F>
  void for_each(F&& fn);
  std::int64_t size() const noexcept { return count_.load(std::memory_order_acquire); }
  std::uint64_t next_number() noexcept {
    return next_number_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  static constexpr std::size_t kShards = 16;
  struct alignas(64) Shard {
    SpinLock lock;
    TaskCore* head = nullptr;
  };
  Shard shards_[kShards];
  std::atomic<std::int64_t> count_{0};
  std::atomic<std::uint64_t> next_number_{1};
};

template <class F>
void TaskRegistry::for_each(F&& fn) {
  std::vector<TaskCore*> tasks;
  for (Shard& s : shards_) {
    s.lock.lock();
    for (TaskCore* t = s.head; t; t = t->registry_next) {
      t->as_future().add_ref();
      tasks.push_back(t);
    }
    s.lock.unlock();
  }
  for (TaskCore* t : tasks) {
    fn(t);
    t->as_future().release();
  }
}

}  // namespace weft::detail

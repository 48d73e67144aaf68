#include "task_registry.hpp"

namespace weft::detail {

void TaskRegistry::insert(TaskCore* task) noexcept {
  Shard& s = shards_[task->id() % kShards];
  s.lock.lock();
  task->registry_prev = nullptr;
  task->registry_next = s.head;
  if (s.head) s.head->registry_prev = task;
  s.head = task;
  s.lock.unlock();
  count_.fetch_add(1, std::memory_order_release);
}

void TaskRegistry::erase(TaskCore* task) noexcept {
  Shard& s = shards_[task->id() % kShards];
  s.lock.lock();
  if (task->registry_prev)
    task->registry_prev->registry_next = task->registry_next;
  else
    s.head = task->registry_next;
  if (task->registry_next) task->registry_next->registry_prev = task->registry_prev;
  task->registry_prev = task->registry_next = nullptr;
  s.lock.unlock();
  count_.fetch_sub(1, std::memory_order_release);
}

}  // namespace weft::detail

// The waiter machinery shared by every sync primitive (internal).
//
// A task that must wait on a primitive links a SyncWaiter node (it lives in
// the awaiter, inside the task's coroutine frame) into one of the primitive's
// WaiterLists and suspends. The node is the task's WaitTarget, so Task::cancel
// reaches it. Protocol:
//
// - Every list, and every node linked into it, is guarded by the primitive's
//   SyncMutex. A node's `state` moves waiting -> granted (a release, set, put,
//   notify... chose it; it is unlinked at the same time) or waiting ->
//   cancelled (cancel_wait unlinked it), exactly once, under that mutex.
// - Whoever moves a node out of `waiting` wakes its task exactly once, and
//   never touches the node after that wake (the task may resume at once on
//   another thread and destroy it). A granter collects granted nodes in a
//   WakeChain (reusing `next`) and wakes them after unlocking.
// - cancel_wait runs under the task's cancellation lock and takes the
//   primitive's mutex: lock order is task cancellation lock -> SyncMutex, so
//   code holding a SyncMutex never calls TaskCore::begin_wait/end_wait or
//   Task::cancel. Awaiters therefore link the node, unlock, then begin_wait().
// - A node granted and then cancelled before its task ran (cancel_wait says
//   false, the task's end_wait() throws CancelledError) hands what it was
//   granted back: finish_wait() runs the primitive's give-back before the
//   CancelledError leaves. Nothing granted is ever kept by a cancelled waiter.
#pragma once

#include <weft/detail/spin_lock.hpp>
#include <weft/detail/task_core.hpp>
#include <weft/errors.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace weft::detail {

/// A primitive's bookkeeping lock: the executor's SpinLock (spins briefly,
/// then yields the CPU). Never held across a wake-up of a task, a callback or
/// user code.
using SyncMutex = SpinLock;

/// RAII holder for a SyncMutex.
class SyncLockGuard {
 public:
  explicit SyncLockGuard(SyncMutex& m) noexcept : m_(m) { m_.lock(); }
  SyncLockGuard(const SyncLockGuard&) = delete;
  SyncLockGuard& operator=(const SyncLockGuard&) = delete;
  ~SyncLockGuard() { m_.unlock(); }

 private:
  SyncMutex& m_;
};

class WaiterList;

/// One waiting task. Lives in an awaiter; see the protocol above.
class SyncWaiter final : public WaitTarget {
 public:
  enum State : std::uint8_t { kIdle, kWaiting, kGranted, kCancelled };

  SyncWaiter() = default;
  // Awaiters are moved only before they are awaited (GCC moves awaiters into
  // the frame), i.e. while the node is idle and unlinked: nothing to carry.
  SyncWaiter(SyncWaiter&&) noexcept {}
  SyncWaiter& operator=(SyncWaiter&&) = delete;
  ~SyncWaiter();

  /// Task::cancel, under the task's cancellation lock: unlinks a waiting node
  /// and wakes the task (true), or reports that it was already granted (false).
  bool cancel_wait(const std::string& message) override;
  /// Unlinks a node that is still waiting without waking its task (its own
  /// task backing out before it suspended). False if it was granted already.
  bool withdraw() noexcept;

  /// The state, read by the node's own task after it was woken.
  State state() const noexcept {
    // ordering: acquire pairs with the release store of the granter or canceller.
    return state_.load(std::memory_order_acquire);
  }
  /// What a granter chose for this waiter (primitive-specific); valid once granted.
  std::uint8_t outcome() const noexcept { return outcome_; }
  TaskCore* task() const noexcept { return task_; }
  /// The cancellation message; valid once cancelled.
  const std::string& cancel_message() const noexcept { return cancel_message_; }

 private:
  friend class WaiterList;
  friend class WakeChain;

  SyncWaiter* prev_ = nullptr;  // guarded by the list's mutex
  SyncWaiter* next_ = nullptr;  // guarded by the list's mutex; the WakeChain link once granted
  WaiterList* list_ = nullptr;
  TaskCore* task_ = nullptr;
  std::atomic<State> state_{kIdle};
  std::uint8_t outcome_ = 0;    // written under the mutex before the granted state
  std::string cancel_message_;  // written under the mutex before the cancelled state
};

/// Nodes granted under a mutex, to be woken after it is released.
class WakeChain {
 public:
  WakeChain() = default;
  WakeChain(const WakeChain&) = delete;
  WakeChain& operator=(const WakeChain&) = delete;
  ~WakeChain() { wake_all(); }
  void add(SyncWaiter* node) noexcept {
    node->next_ = nullptr;
    if (tail_)
      tail_->next_ = node;
    else
      head_ = node;
    tail_ = node;
  }
  /// Wakes every collected task, in the order collected. Call without the mutex.
  void wake_all() noexcept {
    SyncWaiter* n = std::exchange(head_, nullptr);
    tail_ = nullptr;
    while (n) {
      // Read everything before the wake: the node may be gone right after it.
      SyncWaiter* next = n->next_;
      TaskCore* task = n->task_;
      task->wake();
      n = next;
    }
  }

 private:
  SyncWaiter* head_ = nullptr;
  SyncWaiter* tail_ = nullptr;
};

/// An intrusive FIFO of waiting nodes, guarded by its owner's SyncMutex.
/// Every member except mutex() requires that mutex to be held.
class WaiterList {
 public:
  /// Runs under the mutex after a cancellation unlinked a waiting node, so the
  /// owner can fix up its state (e.g. clear a "has waiters" bit).
  using CancelHook = void (*)(void* owner) noexcept;

  explicit WaiterList(SyncMutex& mutex, CancelHook hook = nullptr, void* owner = nullptr) noexcept
      : mutex_(mutex), hook_(hook), owner_(owner) {}
  WaiterList(const WaiterList&) = delete;
  WaiterList& operator=(const WaiterList&) = delete;

  SyncMutex& mutex() const noexcept { return mutex_; }
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }

  /// Links `node` at the back for the running `task`.
  void push_back(SyncWaiter& node, TaskCore& task) noexcept {
    node.task_ = &task;
    node.list_ = this;
    node.prev_ = tail_;
    node.next_ = nullptr;
    if (tail_)
      tail_->next_ = &node;
    else
      head_ = &node;
    tail_ = &node;
    ++size_;
    node.state_.store(SyncWaiter::kWaiting, std::memory_order_relaxed);
  }

  /// Unlinks the first node, marks it granted with `outcome` and adds it to
  /// `chain`. False if the list is empty.
  bool grant_front(WakeChain& chain, std::uint8_t outcome = 0) noexcept {
    SyncWaiter* node = head_;
    if (!node) return false;
    unlink(*node);
    node->outcome_ = outcome;
    // ordering: release publishes outcome_ (and the granter's state) to the woken task.
    node->state_.store(SyncWaiter::kGranted, std::memory_order_release);
    chain.add(node);
    return true;
  }

 private:
  friend class SyncWaiter;

  void unlink(SyncWaiter& node) noexcept {
    if (node.prev_)
      node.prev_->next_ = node.next_;
    else
      head_ = node.next_;
    if (node.next_)
      node.next_->prev_ = node.prev_;
    else
      tail_ = node.prev_;
    node.prev_ = node.next_ = nullptr;
    --size_;
  }
  void cancelled(SyncWaiter& node) noexcept {
    unlink(node);
    if (hook_) hook_(owner_);
  }

  SyncMutex& mutex_;
  CancelHook hook_;
  void* owner_;
  SyncWaiter* head_ = nullptr;
  SyncWaiter* tail_ = nullptr;
  std::size_t size_ = 0;
};

inline bool SyncWaiter::cancel_wait(const std::string& message) {
  WaiterList* list = list_;
  SyncLockGuard guard(list->mutex());
  if (state_.load(std::memory_order_relaxed) != kWaiting) return false;
  list->cancelled(*this);
  cancel_message_ = message;
  // ordering: release publishes cancel_message_ to the woken task.
  state_.store(kCancelled, std::memory_order_release);
  task_->wake();
  return true;
}

inline bool SyncWaiter::withdraw() noexcept {
  SyncLockGuard guard(list_->mutex());
  if (state_.load(std::memory_order_relaxed) != kWaiting) return false;
  list_->cancelled(*this);
  state_.store(kIdle, std::memory_order_relaxed);
  return true;
}

inline SyncWaiter::~SyncWaiter() {
  // Only a frame destroyed while still suspended (runtime teardown) gets here
  // with the node linked: unlink it so the list never points into freed memory.
  if (state_.load(std::memory_order_acquire) == kWaiting) withdraw();
}

/// The end of a wait, in the awaiter's await_resume on the task's own thread.
/// Returns normally when `node` was granted and no cancellation is pending.
/// Throws CancelledError when the node was cancelled while waiting, or when a
/// cancellation arrived after the grant; in the latter case `give_back()`
/// (noexcept) first returns what was granted, so nothing is kept.
template <class GiveBack>
void finish_wait(SyncWaiter& node, GiveBack&& give_back) {
  TaskCore* task = node.task();
  if (node.state() == SyncWaiter::kCancelled) {
    task->end_wait();  // clears the wait; throws itself if another request is pending
    throw CancelledError(node.cancel_message());
  }
  try {
    task->end_wait();
  } catch (...) {
    give_back();
    throw;
  }
}

}  // namespace weft::detail

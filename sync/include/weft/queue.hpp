// Queue<T>, PriorityQueue<T, Compare>, LifoQueue<T> (asyncio's queues, 3.13
// shutdown included).
//
// Usable by tasks on any worker at once; T may be any movable type (move-only
// included). maxsize 0 means unbounded. Blocked getters and putters are
// served in FIFO order.
//
// Protocol (everything below is guarded by `mutex_`):
// - Items live only in `items_`. A getter never receives an item directly:
//   when an item becomes available while getters wait, the first getter is
//   woken with a *reservation* (reserved_items_ + 1) and takes an item itself
//   when it runs. Newcomers see only unreserved items, so they cannot
//   overtake a woken getter. Putters likewise get a reserved free slot
//   (reserved_slots_) and insert their own item when they run.
// - A getter cancelled while waiting just leaves the list. One cancelled after
//   being woken gives its reservation back (passing it to the next getter),
//   so its item stays in the queue for the next get() (QUE-05). A putter
//   cancelled at any point inserts nothing (QUE-06) and passes on its slot.
// - shutdown() wakes every waiter with a shut-down outcome: putters raise
//   QueueShutDown; getters take an unreserved item if one is left, else raise
//   QueueShutDown (QUE-09/10). shutdown(true) also drops the items, lowering
//   the unfinished count by as many (QUE-11).
// - `finished_` is set exactly while unfinished_ == 0 (set and cleared with
//   `mutex_` held); join() waits on it.
// - Wake-ups are collected under `mutex_` and delivered after it is released.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/sync_waiter.hpp>
#include <weft/errors.hpp>
#include <weft/event.hpp>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

namespace weft {
namespace detail {

/// FIFO storage: get() returns the oldest item.
template <class T>
struct FifoStore {
  using Container = std::deque<T>;
  Container c;
  void push(T&& v) { c.push_back(std::move(v)); }
  T pop() {
    T v = std::move(c.front());
    c.pop_front();
    return v;
  }
};

/// LIFO storage: get() returns the newest item.
template <class T>
struct LifoStore {
  using Container = std::vector<T>;
  Container c;
  void push(T&& v) { c.push_back(std::move(v)); }
  T pop() {
    T v = std::move(c.back());
    c.pop_back();
    return v;
  }
};

/// Heap storage: get() returns the smallest item under Compare (as heapq).
template <class T, class Compare>
struct HeapStore {
  using Container = std::vector<T>;
  Container c;
  Compare comp{};
  void push(T&& v) {
    c.push_back(std::move(v));
    std::push_heap(c.begin(), c.end(), greater());
  }
  T pop() {
    std::pop_heap(c.begin(), c.end(), greater());
    T v = std::move(c.back());
    c.pop_back();
    return v;
  }

 private:
  // std::*_heap keep the largest first; inverting the order keeps the smallest.
  auto greater() {
    return [this](const T& a, const T& b) { return comp(b, a); };
  }
};

/// The queue itself; Queue, LifoQueue and PriorityQueue differ only in Store.
template <class T, class Store>
class BasicQueue {
 public:
  /// maxsize 0: unbounded.
  explicit BasicQueue(std::size_t maxsize = 0)
      : maxsize_(maxsize), getters_(mutex_), putters_(mutex_) {
    finished_.set();
  }
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  /// Puts `item`, waiting (FIFO) while the queue is full. Inside a task.
  /// @throws QueueShutDown after shutdown() (also when it happens while
  /// waiting); CancelledError if cancelled while waiting: the item is then
  /// not inserted.
  Coro<void> put(T item) { co_await PutAwaiter(this, &item); }

  /// Removes and returns an item, waiting (FIFO) while none is available.
  /// Inside a task. @throws QueueShutDown once shut down and empty (at once
  /// after shutdown(true)); CancelledError if cancelled while waiting: no
  /// item is then taken.
  Coro<T> get() { co_return co_await GetAwaiter(this); }

  /// Puts without waiting. Any thread. @throws QueueShutDown after
  /// shutdown(), QueueFull if full (no free slot unreserved).
  void put_nowait(T item) {
    WakeChain chain;  // destroyed after the guard: wakes outside the mutex
    SyncLockGuard guard(mutex_);
    if (shutdown_) throw QueueShutDown();
    if (!slot_free()) throw QueueFull();
    push_locked(std::move(item), chain);
  }

  /// Gets without waiting. Any thread. @throws QueueEmpty if no unreserved
  /// item is available (QueueShutDown instead once shut down).
  T get_nowait() {
    WakeChain chain;
    SyncLockGuard guard(mutex_);
    if (available_items() == 0) {
      if (shutdown_) throw QueueShutDown();
      throw QueueEmpty();
    }
    return pop_locked(chain);
  }

  /// Items in the queue (including ones reserved for woken getters). Any thread.
  std::size_t qsize() const {
    SyncLockGuard guard(mutex_);
    return items_.c.size();
  }
  bool empty() const { return qsize() == 0; }
  bool full() const { return maxsize_ != 0 && qsize() >= maxsize_; }
  std::size_t maxsize() const noexcept { return maxsize_; }

  /// Marks one fetched item as processed. Any thread.
  /// @throws ValueError("task_done() called too many times") past zero.
  void task_done() {
    SyncLockGuard guard(mutex_);
    if (unfinished_ == 0) throw ValueError("task_done() called too many times");
    if (--unfinished_ == 0) finished_.set();
  }

  /// Waits until every item put has been marked done. Inside a task.
  Coro<void> join() {
    bool pending;
    {
      SyncLockGuard guard(mutex_);
      pending = unfinished_ > 0;
    }
    if (pending) co_await finished_.wait();
  }

  /// Shuts the queue down (asyncio 3.13): puts raise QueueShutDown, blocked
  /// putters and getters are woken; gets drain what is left and then raise.
  /// With `immediate`, the items are dropped too (each counts as done) and
  /// every get raises. Any thread; idempotent.
  void shutdown(bool immediate = false) {
    typename Store::Container dropped;  // destroyed last, outside the mutex
    WakeChain chain;
    SyncLockGuard guard(mutex_);
    shutdown_ = true;
    if (immediate) {
      std::size_t n = items_.c.size();
      dropped.swap(items_.c);
      unfinished_ -= std::min(n, unfinished_);
      if (unfinished_ == 0) finished_.set();
    }
    while (getters_.grant_front(chain, kShutDown)) {
    }
    while (putters_.grant_front(chain, kShutDown)) {
    }
  }

 private:
  enum Outcome : std::uint8_t { kReserved, kShutDown };

  // --- all of these require mutex_ ---
  std::size_t available_items() const noexcept {
    std::size_t n = items_.c.size();
    return n > reserved_items_ ? n - reserved_items_ : 0;
  }
  bool slot_free() const noexcept {
    return maxsize_ == 0 || items_.c.size() + reserved_slots_ < maxsize_;
  }
  void wake_getters(WakeChain& chain) noexcept {
    while (!getters_.empty() && available_items() > 0) {
      getters_.grant_front(chain, kReserved);
      ++reserved_items_;
    }
  }
  void wake_putters(WakeChain& chain) noexcept {
    while (!putters_.empty() && slot_free()) {
      putters_.grant_front(chain, kReserved);
      ++reserved_slots_;
    }
  }
  void push_locked(T&& item, WakeChain& chain) {
    items_.push(std::move(item));
    ++unfinished_;
    finished_.clear();
    wake_getters(chain);
  }
  T pop_locked(WakeChain& chain) {
    T item = items_.pop();
    wake_putters(chain);
    return item;
  }

  class PutAwaiter {
   public:
    using weft_native_awaitable = void;
    PutAwaiter(BasicQueue* q, T* item) noexcept : q_(q), item_(item) {}
    PutAwaiter(PutAwaiter&& other) noexcept : q_(other.q_), item_(other.item_) {}
    PutAwaiter& operator=(PutAwaiter&&) = delete;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      TaskCore& task = require_task("Queue::put");
      task.set_resume_point(h);
      {
        WakeChain chain;
        SyncLockGuard guard(q_->mutex_);
        if (q_->shutdown_) {
          shut_down_ = true;
          return false;
        }
        if (q_->slot_free()) {
          q_->push_locked(std::move(*item_), chain);
          return false;
        }
        q_->putters_.push_back(node_, task);
      }
      linked_ = true;
      task.begin_wait(&node_);
      return true;
    }
    void await_resume() {
      if (shut_down_) throw QueueShutDown();
      if (!linked_) return;
      linked_ = false;
      BasicQueue* q = q_;
      bool reserved = node_.outcome() == kReserved;
      finish_wait(node_, [q, reserved]() noexcept {
        if (!reserved) return;
        WakeChain chain;
        SyncLockGuard guard(q->mutex_);
        --q->reserved_slots_;
        q->wake_putters(chain);  // pass the slot on
      });
      WakeChain chain;
      SyncLockGuard guard(q->mutex_);
      if (reserved) --q->reserved_slots_;
      if (q->shutdown_) throw QueueShutDown();
      q->push_locked(std::move(*item_), chain);
    }

   private:
    BasicQueue* q_;
    T* item_;
    SyncWaiter node_;
    bool linked_ = false;
    bool shut_down_ = false;
  };

  class GetAwaiter {
   public:
    using weft_native_awaitable = void;
    explicit GetAwaiter(BasicQueue* q) noexcept : q_(q) {}
    GetAwaiter(GetAwaiter&& other) noexcept : q_(other.q_) {}
    GetAwaiter& operator=(GetAwaiter&&) = delete;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      TaskCore& task = require_task("Queue::get");
      task.set_resume_point(h);
      {
        WakeChain chain;
        SyncLockGuard guard(q_->mutex_);
        if (q_->available_items() > 0) {
          item_.emplace(q_->pop_locked(chain));
          return false;
        }
        if (q_->shutdown_) return false;  // await_resume raises
        q_->getters_.push_back(node_, task);
      }
      linked_ = true;
      task.begin_wait(&node_);
      return true;
    }
    T await_resume() {
      if (item_) return std::move(*item_);
      if (!linked_) throw QueueShutDown();
      linked_ = false;
      BasicQueue* q = q_;
      bool reserved = node_.outcome() == kReserved;
      finish_wait(node_, [q, reserved]() noexcept {
        if (!reserved) return;
        WakeChain chain;
        SyncLockGuard guard(q->mutex_);
        --q->reserved_items_;
        q->wake_getters(chain);  // the item stays: pass it on
      });
      WakeChain chain;
      SyncLockGuard guard(q->mutex_);
      if (reserved) --q->reserved_items_;
      if (q->available_items() == 0) throw QueueShutDown();  // woken by shutdown, nothing left
      return q->pop_locked(chain);
    }

   private:
    BasicQueue* q_;
    std::optional<T> item_;
    SyncWaiter node_;
    bool linked_ = false;
  };

  mutable SyncMutex mutex_;
  Store items_;
  std::size_t maxsize_;
  std::size_t reserved_items_ = 0;  // items promised to woken getters
  std::size_t reserved_slots_ = 0;  // free slots promised to woken putters
  std::size_t unfinished_ = 0;
  bool shutdown_ = false;
  WaiterList getters_;
  WaiterList putters_;
  Event finished_;
};

}  // namespace detail

/// FIFO queue (asyncio.Queue): puts 1,3,2 -> gets 1,3,2.
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
 public:
  using detail::BasicQueue<T, detail::FifoStore<T>>::BasicQueue;
};

/// LIFO queue (asyncio.LifoQueue): puts 1,3,2 -> gets 2,3,1.
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoStore<T>> {
 public:
  using detail::BasicQueue<T, detail::LifoStore<T>>::BasicQueue;
};

/// Priority queue (asyncio.PriorityQueue): smallest under Compare first;
/// puts 1,3,2 -> gets 1,2,3. Equal items come out in unspecified order.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
 public:
  using detail::BasicQueue<T, detail::HeapStore<T, Compare>>::BasicQueue;
};

}  // namespace weft

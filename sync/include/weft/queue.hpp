// Queue<T>, PriorityQueue<T, Compare>, LifoQueue<T> (asyncio's queues, 3.13
// shutdown included).
//
// Usable by tasks on any worker at once; T may be any movable type (move-only
// included). maxsize 0 means unbounded. Blocked getters and putters are
// served in FIFO order.
//
// Protocol (everything below is guarded by `hot_->mutex`; the counters named
// below live in `hot_` too):
// - Items live only in `items`. A getter never receives an item directly:
//   when an item becomes available while getters wait, the first getter is
//   woken with a *reservation* (reserved_items + 1) and takes an item itself
//   when it runs. Newcomers see only unreserved items, so they cannot
//   overtake a woken getter. Putters likewise get a reserved free slot
//   (reserved_slots) and insert their own item when they run.
// - A getter cancelled while waiting just leaves the list. One cancelled after
//   being woken gives its reservation back (passing it to the next getter),
//   so its item stays in the queue for the next get() (QUE-05). A putter
//   cancelled at any point inserts nothing (QUE-06) and passes on its slot.
// - shutdown() wakes every waiter with a shut-down outcome: putters raise
//   QueueShutDown; getters take an unreserved item if one is left, else raise
//   QueueShutDown (QUE-09/10). shutdown(true) also drops the items, lowering
//   the unfinished count by as many (QUE-11).
// - `finished_` is set exactly while unfinished == 0 (set and cleared with
//   `hot_->mutex` held, only when unfinished moves between 0 and 1, so a put
//   into a queue with unfinished items never touches it); join() waits on it.
// - Wake-ups are collected under `hot_->mutex` and delivered after it is released.
// - Fast paths: put() and get() try first in await_ready (one trip through
//   `hot_->mutex`, no task bookkeeping): a put inserts when a slot is free, a get
//   takes an unreserved item (try_put_locked / try_get_locked, which
//   put_nowait / get_nowait and await_suspend's re-check share). Those are exactly the cases in
//   which asyncio's put()/get() return without suspending, so, as in asyncio, a cancellation
//   requested before such a call is not raised there but at the task's next
//   suspension. Only when it must wait does the awaiter touch the task
//   (await_suspend re-checks under `hot_->mutex`, then links a waiter node).
//
// Deviation (docs/api.md, sync): put() and get() return awaitables (detail PutOp and
// GetOp) used exactly like the Coro<void> / Coro<T> (`co_await q.put(v);`,
// `T v = co_await q.get();`) that avoid a coroutine frame per call. Each is
// awaitable once, inside a task. Every composition function takes them as
// they are: `weft::wait_for(q.get(), 1s)` awaits inline, so a timed-out get
// leaves its item queued and a timed-out put inserts nothing;
// `weft::create_task(q.get())` and `weft::gather(q.get(), ...)` run them as
// tasks. An item such a get task took and that gather or shield will not
// deliver (it raised, or was cancelled) goes back to the front of the queue
// (the top for LifoQueue, into the heap for PriorityQueue), even past
// maxsize; asyncio drops it.
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/coop.hpp>
#include <weft/detail/give_back.hpp>
#include <weft/detail/sync_waiter.hpp>
#include <weft/errors.hpp>
#include <weft/event.hpp>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft {
namespace detail {

/// A growable ring of T (FIFO storage): contiguous, no allocation once it is
/// as large as the queue gets (the capacity doubles, a power of two). Not
/// thread-safe (the queue's mutex guards it).
template <class T>
class RingBuffer {
 public:
  RingBuffer() noexcept = default;
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;
  ~RingBuffer() {
    while (size_ > 0) (void)pop_front();
    if (buf_) std::allocator<T>().deallocate(buf_, mask_ + 1);
  }

  std::size_t size() const noexcept { return size_; }
  void swap(RingBuffer& other) noexcept {
    std::swap(buf_, other.buf_);
    std::swap(mask_, other.mask_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
  }
  /// @throws what allocating or moving T throws (the items are then kept,
  /// unless T is move-only with a throwing move constructor).
  void push_back(T&& v) {
    if (!buf_ || size_ == mask_ + 1) grow();
    ::new (static_cast<void*>(buf_ + ((head_ + size_) & mask_))) T(std::move(v));
    ++size_;
  }
  /// As push_back, at the front (the next pop_front returns it).
  void push_front(T&& v) {
    if (!buf_ || size_ == mask_ + 1) grow();
    std::size_t slot = (head_ + mask_) & mask_;  // head_ - 1, wrapped
    ::new (static_cast<void*>(buf_ + slot)) T(std::move(v));
    head_ = slot;
    ++size_;
  }
  /// Precondition: size() > 0.
  T pop_front() {
    T* slot = buf_ + head_;
    T v = std::move(*slot);
    slot->~T();
    head_ = (head_ + 1) & mask_;
    --size_;
    return v;
  }

 private:
  void grow() {
    std::size_t cap = buf_ ? (mask_ + 1) * 2 : 16;
    std::allocator<T> alloc;
    T* fresh = alloc.allocate(cap);
    std::size_t moved = 0;
    try {
      for (; moved < size_; ++moved)
        ::new (static_cast<void*>(fresh + moved))
            T(std::move_if_noexcept(buf_[(head_ + moved) & mask_]));
    } catch (...) {
      for (std::size_t i = 0; i < moved; ++i) fresh[i].~T();
      alloc.deallocate(fresh, cap);
      throw;
    }
    for (std::size_t i = 0; i < size_; ++i) buf_[(head_ + i) & mask_].~T();
    if (buf_) alloc.deallocate(buf_, mask_ + 1);
    buf_ = fresh;
    mask_ = cap - 1;
    head_ = 0;
  }

  T* buf_ = nullptr;
  std::size_t mask_ = 0;  // capacity - 1 once allocated
  std::size_t head_ = 0;  // index of the oldest item
  std::size_t size_ = 0;
};

/// FIFO storage: get() returns the oldest item.
template <class T>
struct FifoStore {
  using Container = RingBuffer<T>;
  Container c;
  void push(T&& v) { c.push_back(std::move(v)); }
  T pop() { return c.pop_front(); }
  /// An item a get took, back where it was: the oldest.
  void push_taken(T&& v) { c.push_front(std::move(v)); }
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
  void push_taken(T&& v) { push(std::move(v)); }
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
  void push_taken(T&& v) { push(std::move(v)); }

 private:
  // std::*_heap keep the largest first; inverting the order keeps the smallest.
  auto greater() {
    return [this](const T& a, const T& b) { return comp(b, a); };
  }
};

/// Room for a SyncWaiter that is built only when an awaiter really waits, so
/// the fast paths neither construct nor destroy one. Movable only while
/// unbuilt (awaiters are moved only before they are awaited). Owned by one
/// awaiter, on its task's thread.
class LazyWaiter {
 public:
  LazyWaiter() noexcept {}
  LazyWaiter(LazyWaiter&&) noexcept {}
  LazyWaiter& operator=(LazyWaiter&&) = delete;
  ~LazyWaiter() {
    if (built_) node_.~SyncWaiter();  // unlinks it if still waiting (teardown)
  }
  /// Builds the node. Precondition: not built yet.
  SyncWaiter& build() noexcept {
    ::new (static_cast<void*>(&node_)) SyncWaiter();
    built_ = true;
    return node_;
  }
  /// Precondition: built.
  SyncWaiter& node() noexcept { return node_; }

 private:
  union {
    SyncWaiter node_;
  };
  bool built_ = false;
};

/// The queue itself; Queue, LifoQueue and PriorityQueue differ only in Store.
template <class T, class Store>
class BasicQueue {
 public:
  /// maxsize 0: unbounded. @throws std::bad_alloc.
  explicit BasicQueue(std::size_t maxsize = 0)
      : hot_(std::make_unique<Hot>(maxsize)), getters_(hot_->mutex), putters_(hot_->mutex) {
    finished_.set();
  }
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  class PutOp;
  class GetOp;

  /// `co_await q.put(item);` puts `item`, waiting (FIFO) while the queue is
  /// full. Inside a task. The returned awaitable owns the item until it is
  /// inserted. @throws QueueShutDown after shutdown() (also when it happens
  /// while waiting); CancelledError if cancelled while waiting: the item is
  /// then not inserted.
  PutOp put(T item) { return PutOp(this, std::move(item)); }

  /// `T v = co_await q.get();` removes and returns an item, waiting (FIFO)
  /// while none is available. Inside a task. @throws QueueShutDown once shut
  /// down and empty (at once after shutdown(true)); CancelledError if
  /// cancelled while waiting: no item is then taken.
  GetOp get() noexcept { return GetOp(this); }

  /// Puts without waiting. Any thread. @throws QueueShutDown after
  /// shutdown(), QueueFull if full (no free slot unreserved).
  void put_nowait(T item) {
    WakeChain chain;  // destroyed after the guard: wakes outside the mutex
    SyncLockGuard guard(hot_->mutex);
    switch (try_put_locked(item, chain)) {
      case FastPath::kDone:
        return;
      case FastPath::kShutDown:
        throw QueueShutDown();
      case FastPath::kMustWait:
        throw QueueFull();
    }
  }

  /// Gets without waiting. Any thread. @throws QueueEmpty if no unreserved
  /// item is available (QueueShutDown instead once shut down).
  T get_nowait() {
    WakeChain chain;
    SyncLockGuard guard(hot_->mutex);
    std::optional<T> item;
    switch (try_get_locked(item, chain)) {
      case FastPath::kDone:
        break;
      case FastPath::kShutDown:
        throw QueueShutDown();
      case FastPath::kMustWait:
        throw QueueEmpty();
    }
    return std::move(*item);
  }

  /// Items in the queue (including ones reserved for woken getters). Any thread.
  std::size_t qsize() const {
    SyncLockGuard guard(hot_->mutex);
    return hot_->items.c.size();
  }
  bool empty() const { return qsize() == 0; }
  bool full() const { return hot_->maxsize != 0 && qsize() >= hot_->maxsize; }
  std::size_t maxsize() const noexcept { return hot_->maxsize; }

  /// Marks one fetched item as processed. Any thread.
  /// @throws ValueError("task_done() called too many times") past zero.
  void task_done() {
    SyncLockGuard guard(hot_->mutex);
    if (hot_->unfinished == 0) throw ValueError("task_done() called too many times");
    if (--hot_->unfinished == 0) finished_.set();
  }

  /// Waits until every item put has been marked done. Inside a task.
  Coro<void> join() {
    bool pending;
    {
      SyncLockGuard guard(hot_->mutex);
      pending = hot_->unfinished > 0;
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
    SyncLockGuard guard(hot_->mutex);
    hot_->shutdown = true;
    if (immediate) {
      std::size_t n = hot_->items.c.size();
      dropped.swap(hot_->items.c);
      hot_->unfinished -= std::min(n, hot_->unfinished);
      if (hot_->unfinished == 0) finished_.set();
    }
    while (getters_.grant_front(chain, kShutDown)) {
    }
    while (putters_.grant_front(chain, kShutDown)) {
    }
  }

 private:
  enum Outcome : std::uint8_t { kReserved, kShutDown };
  /// What a put or get can do without waiting.
  enum class FastPath : std::uint8_t { kDone, kMustWait, kShutDown };

  // --- all of these require hot_->mutex ---
  /// The put that needs no waiting, shared by put_nowait and PutOp: inserts
  /// `item` (moving from it) when a slot is free; refuses after shutdown.
  FastPath try_put_locked(T& item, WakeChain& chain) {
    if (hot_->shutdown) return FastPath::kShutDown;
    if (!slot_free()) return FastPath::kMustWait;
    push_locked(std::move(item), chain);
    return FastPath::kDone;
  }
  /// The get that needs no waiting, shared by get_nowait and GetOp: takes an
  /// unreserved item into `out`; refuses once shut down and empty.
  FastPath try_get_locked(std::optional<T>& out, WakeChain& chain) {
    if (available_items() > 0) {
      out.emplace(pop_locked(chain));
      return FastPath::kDone;
    }
    return hot_->shutdown ? FastPath::kShutDown : FastPath::kMustWait;
  }
  std::size_t available_items() const noexcept {
    std::size_t n = hot_->items.c.size();
    return n > hot_->reserved_items ? n - hot_->reserved_items : 0;
  }
  bool slot_free() const noexcept {
    return hot_->maxsize == 0 || hot_->items.c.size() + hot_->reserved_slots < hot_->maxsize;
  }
  void wake_getters(WakeChain& chain) noexcept {
    while (!getters_.empty() && available_items() > 0) {
      getters_.grant_front(chain, kReserved);
      ++hot_->reserved_items;
    }
  }
  void wake_putters(WakeChain& chain) noexcept {
    while (!putters_.empty() && slot_free()) {
      putters_.grant_front(chain, kReserved);
      ++hot_->reserved_slots;
    }
  }
  void push_locked(T&& item, WakeChain& chain) {
    hot_->items.push(std::move(item));
    if (hot_->unfinished++ == 0) finished_.clear();
    wake_getters(chain);
  }
  T pop_locked(WakeChain& chain) {
    T item = hot_->items.pop();
    wake_putters(chain);
    return item;
  }

  /// Returns an item a get took and nobody received (detail/give_back.hpp)
  /// to where the get found it, even past maxsize: a putter may have filled
  /// its slot since, and exceeding the bound until the next get is the only
  /// way to lose nothing. Not counted again for join(): the put counted it
  /// and nobody called task_done() for it. Any thread.
  void give_back(T&& item) noexcept {
    WakeChain chain;
    SyncLockGuard guard(hot_->mutex);
    hot_->items.push_taken(std::move(item));  // terminates only if allocating fails
    wake_getters(chain);
  }

  // What every put and get reads and writes: the mutex, the store's indices
  // and the counters share the first cache line (64 bytes for a FIFO queue;
  // maxsize, read-only, comes after), so a put or get running on another
  // core than the previous one moves one line. Allocated apart so that it is
  // aligned wherever the queue lives (GCC 12 does not over-align coroutine
  // frames, where queues often are).
  struct alignas(64) Hot {
    explicit Hot(std::size_t max) : maxsize(max) {}
    SyncMutex mutex;
    bool shutdown = false;
    Store items;
    std::size_t unfinished = 0;
    std::size_t reserved_items = 0;  // items promised to woken getters
    std::size_t reserved_slots = 0;  // free slots promised to woken putters
    const std::size_t maxsize;
  };

  const std::unique_ptr<Hot> hot_;  // its fields are guarded by hot_->mutex (maxsize: const)
  WaiterList getters_;
  WaiterList putters_;
  Event finished_;
};

/// What BasicQueue::put() returns: `co_await q.put(item);`. Owns the item
/// until it is inserted (a put that is never awaited, or that fails, drops
/// it). Move-only; awaitable once, inside a task. Composes as it is
/// (`weft::wait_for(q.put(item), 1s)`); converts to Coro<void> too.
template <class T, class Store>
class [[nodiscard]] BasicQueue<T, Store>::PutOp {
 public:
  using weft_native_awaitable = void;
  void weft_describe_await(AwaitTarget& out) const noexcept {
    out.kind = AwaitKind::queue_put;
    out.object = q_;
  }

  PutOp(BasicQueue* q, T&& item) noexcept(std::is_nothrow_move_constructible_v<T>)
      : q_(q), item_(std::move(item)) {}
  // Moved only before it is awaited (GCC moves awaiters into the frame).
  PutOp(PutOp&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : q_(other.q_), item_(std::move(other.item_)) {}
  PutOp& operator=(PutOp&&) = delete;

  /// Fast path: inserts at once when a slot is free (or fails at once after
  /// shutdown) without touching the task.
  bool await_ready() {
    if (!coop_take()) return false;  // budget spent: await_suspend yields
    WakeChain chain;                 // destroyed after the guard: wakes outside the mutex
    SyncLockGuard guard(q_->hot_->mutex);
    return try_locked(chain);
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    TaskCore& task = require_task("Queue::put");
    suspend_at(task, h, *this);
    {
      WakeChain chain;
      SyncLockGuard guard(q_->hot_->mutex);
      if (!coop_spent()) {
        if (try_locked(chain)) return false;  // a slot freed up since await_ready, or shut down
        q_->putters_.push_back(node_.build(), task);
      } else if (q_->hot_->shutdown) {
        shut_down_ = true;
        return false;
      } else {
        // The step's budget is spent (detail/coop.hpp): wait as for a full
        // queue, behind nobody (no putter waits while a slot is free), and
        // reserve a free slot at once (none while full); the wake queues this
        // task behind what is ready now.
        q_->putters_.push_back(node_.build(), task);
        q_->wake_putters(chain);
      }
    }
    linked_ = true;
    task.begin_wait(&node_.node());
    return true;
  }
  void await_resume() {
    if (shut_down_) throw QueueShutDown();
    if (!linked_) return;  // inserted without waiting
    linked_ = false;
    BasicQueue* q = q_;
    bool reserved = node_.node().outcome() == kReserved;
    finish_wait(node_.node(), [q, reserved]() noexcept {
      if (!reserved) return;
      WakeChain chain;
      SyncLockGuard guard(q->hot_->mutex);
      --q->hot_->reserved_slots;
      q->wake_putters(chain);  // pass the slot on
    });
    WakeChain chain;
    SyncLockGuard guard(q->hot_->mutex);
    if (reserved) --q->hot_->reserved_slots;
    if (q->hot_->shutdown) throw QueueShutDown();
    q->push_locked(std::move(item_), chain);
  }

  /// The same put as a Coro (allocates a frame).
  operator Coro<void>() && { return as_coro(q_, std::move(item_)); }

 private:
  static Coro<void> as_coro(BasicQueue* q, T item) { co_await PutOp(q, std::move(item)); }
  /// Under the queue's mutex: the put without waiting, or its refusal after
  /// shutdown (await_resume raises). False: it must wait.
  bool try_locked(WakeChain& chain) {
    switch (q_->try_put_locked(item_, chain)) {
      case FastPath::kDone:
        return true;
      case FastPath::kShutDown:
        shut_down_ = true;
        return true;
      case FastPath::kMustWait:
        break;
    }
    return false;
  }

  BasicQueue* q_;
  T item_;
  LazyWaiter node_;
  bool linked_ = false;
  bool shut_down_ = false;
};

/// What BasicQueue::get() returns: `T v = co_await q.get();`. Move-only;
/// awaitable once, inside a task. Composes as it is
/// (`weft::wait_for(q.get(), 1s)`, `weft::create_task(q.get())`); converts to
/// Coro<T> too.
template <class T, class Store>
class [[nodiscard]] BasicQueue<T, Store>::GetOp {
 public:
  using weft_native_awaitable = void;
  void weft_describe_await(AwaitTarget& out) const noexcept {
    out.kind = AwaitKind::queue_get;
    out.object = q_;
  }

  explicit GetOp(BasicQueue* q) noexcept : q_(q) {}
  // Moved only before it is awaited (GCC moves awaiters into the frame).
  GetOp(GetOp&& other) noexcept : q_(other.q_) {}
  GetOp& operator=(GetOp&&) = delete;

  /// Fast path: takes an unreserved item at once (or fails at once when shut
  /// down and empty) without touching the task.
  bool await_ready() {
    if (!coop_take()) return false;  // budget spent: await_suspend yields
    WakeChain chain;                 // destroyed after the guard: wakes outside the mutex
    SyncLockGuard guard(q_->hot_->mutex);
    return q_->try_get_locked(item_, chain) !=
           FastPath::kMustWait;  // kShutDown: await_resume raises
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    TaskCore& task = require_task("Queue::get");
    suspend_at(task, h, *this);
    {
      WakeChain chain;
      SyncLockGuard guard(q_->hot_->mutex);
      if (!coop_spent()) {
        // An item came since await_ready, or the queue was shut down (then
        // await_resume raises).
        if (q_->try_get_locked(item_, chain) != FastPath::kMustWait) return false;
        q_->getters_.push_back(node_.build(), task);
      } else if (q_->available_items() == 0 && q_->hot_->shutdown) {
        return false;  // await_resume raises
      } else {
        // The step's budget is spent (detail/coop.hpp): wait as for an empty
        // queue, behind nobody (no getter waits while an item is unreserved),
        // and reserve an item at once (none while empty); the wake queues
        // this task behind what is ready now.
        q_->getters_.push_back(node_.build(), task);
        q_->wake_getters(chain);
      }
    }
    linked_ = true;
    task.begin_wait(&node_.node());
    return true;
  }
  T await_resume() {
    if (item_) return std::move(*item_);
    if (!linked_) throw QueueShutDown();
    linked_ = false;
    BasicQueue* q = q_;
    bool reserved = node_.node().outcome() == kReserved;
    finish_wait(node_.node(), [q, reserved]() noexcept {
      if (!reserved) return;
      WakeChain chain;
      SyncLockGuard guard(q->hot_->mutex);
      --q->hot_->reserved_items;
      q->wake_getters(chain);  // the item stays: pass it on
    });
    WakeChain chain;
    SyncLockGuard guard(q->hot_->mutex);
    if (reserved) --q->hot_->reserved_items;
    if (q->available_items() == 0) throw QueueShutDown();  // woken by shutdown, nothing left
    return q->pop_locked(chain);
  }

  /// The same get as a Coro (allocates a frame).
  operator Coro<T>() && { return as_coro(q_); }

  /// How a composition that ran this get as its own task returns the item
  /// nobody received (detail/give_back.hpp).
  GiveBack weft_give_back() const noexcept { return GiveBack{&give_back_item, q_}; }

 private:
  static Coro<T> as_coro(BasicQueue* q) { co_return co_await GetOp(q); }
  static void give_back_item(void* q, FutureBase& done) noexcept {
    static_cast<BasicQueue*>(q)->give_back(
        std::move(static_cast<FutureState<T>&>(done).value_ref()));
  }

  BasicQueue* q_;
  std::optional<T> item_;
  LazyWaiter node_;
  bool linked_ = false;
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

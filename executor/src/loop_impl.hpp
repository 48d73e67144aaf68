// LoopImpl: the state of one event loop.
//
// Ownership protocol:
// - owner-only (the thread running the loop: a runtime worker, or the thread
//   inside run_* of a standalone loop): ready_, timers_, fds_, selector
//   registration, the per-iteration counters.
// - any thread: inbox_ (moodycamel ConcurrentQueue, multi-producer) plus
//   inbox_count_, parked_, stopping_, closed_; everything else a foreign
//   thread asks for (call_soon, call_later, add_reader, waking a pinned task)
//   is handed over through the inbox.
// - Parking (invariant 4 of docs/architecture.md): before blocking in the selector the
//   owner stores parked_ = true, then re-reads inbox_count_ (both seq_cst); a
//   producer enqueues, increments inbox_count_, then reads parked_ (seq_cst).
//   One of the two sees the other, so a wake-up is never lost, and the
//   eventfd write happens only when the owner is (about to be) parked.
// - Spinning before parking (issue 5): when the owner has just handed work to
//   another thread whose completion will come back through the inbox (an
//   offload: expect_remote_wake()), its next park first polls for up to
//   kRemoteWakeSpin after that hand-off (inbox_count_, stopping, and for a
//   runtime worker the injector and an unpark aimed at it) with parked_ still
//   false, so a completion arriving meanwhile costs neither side a system
//   call. It is bounded per hand-off (owner-only spin_deadline_, cleared by
//   the spin), so an idle loop parks without burning CPU, and fruitless spins
//   (long calls, an oversubscribed machine) make the next ones exponentially
//   rarer. Nothing is lost: the park that follows the spin runs the protocol
//   above unchanged.
#pragma once

#include <weft/event_loop.hpp>
#include <weft/loop_options.hpp>
#include <weft/reactor/selector.hpp>

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "spin_wait.hpp"
#include "tsan.hpp"

namespace weft::detail {

class Worker;
struct WorkerProbe;
class Scheduler;
class TaskRegistry;
class LoopImpl;

/// A heap entry: a call_later handle or a sleep's timer.
class TimerEntry : public Runnable {
 public:
  TimePoint when{};
  std::uint64_t seq = 0;
  virtual bool timer_cancelled() const noexcept = 0;
  virtual void add_ref() noexcept = 0;
  virtual void release() noexcept = 0;

 protected:
  ~TimerEntry() = default;
};

/// A callback scheduled with call_soon / call_later or registered for an fd.
class HandleState final : public TimerEntry, public FrameAllocated {
 public:
  HandleState(LoopImpl* loop, Callback fn) : loop_(loop), fn_(std::move(fn)) {}
  void run() override;
  bool timer_cancelled() const noexcept override {
    return cancelled_.load(std::memory_order_acquire);
  }
  void add_ref() noexcept override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void cancel() noexcept { cancelled_.store(true, std::memory_order_release); }
  /// fd handles stay registered and are queued once per readiness report.
  bool queued = false;  // owner-only

 private:
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<bool> cancelled_{false};
  LoopImpl* loop_;
  Callback fn_;
};

/// Intrusive FIFO of Runnables (owner-only).
class ReadyList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  void push_back(Runnable* r) noexcept {
    r->next_ready = nullptr;
    if (tail_)
      tail_->next_ready = r;
    else
      head_ = r;
    tail_ = r;
    ++size_;
  }
  Runnable* pop_front() noexcept {
    Runnable* r = head_;
    if (!r) return nullptr;
    head_ = r->next_ready;
    if (!head_) tail_ = nullptr;
    r->next_ready = nullptr;
    --size_;
    return r;
  }

 private:
  Runnable* head_ = nullptr;
  Runnable* tail_ = nullptr;
  std::size_t size_ = 0;
};

struct LoopCounters {
  std::atomic<std::uint64_t> remote_wakeups{0};
  std::atomic<std::uint64_t> io_events{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<std::int64_t> ready_depth{0};
  std::atomic<std::int64_t> timers_pending{0};
  // Owner-written with a relaxed load and store (no read-modify-write).
  std::atomic<std::uint64_t> io_readable{0};   // reader callbacks queued by readiness
  std::atomic<std::uint64_t> io_writable{0};   // writer callbacks queued by readiness
  std::atomic<std::uint64_t> timers_armed{0};  // entries put on the heap
  std::atomic<std::uint64_t> parked_ns{0};     // time blocked in the selector
  std::atomic<std::uint64_t> steps{0};         // task steps run with no step probe
};

class LoopImpl {
 public:
  /// `options` resolved (resolve_loop_options): every switch has a value.
  LoopImpl(EventLoop* self, Worker* worker, Scheduler* scheduler, const LoopOptions& options);
  ~LoopImpl();

  const LoopOptions options;

  EventLoop* self;
  Worker* const worker;        // null for a standalone loop
  Scheduler* const scheduler;  // null for a standalone loop
  TaskRegistry* registry;      // the runtime's, or owned_registry_'s

  bool on_owner_thread() const noexcept;
  void bind_owner_thread() noexcept;

  // --- scheduling (any thread) ---
  /// call_soon semantics: owner thread appends to ready_, others via inbox.
  void schedule(Runnable* r) noexcept;
  void add_timer(TimerEntry* t);  // takes one reference
  void wake_if_parked() noexcept;
  /// Unconditional wake-up (a runtime unparking this worker).
  void force_wake() noexcept { selector.wake(); }

  // --- the loop itself (owner thread) ---
  /// One asyncio iteration. With may_block false the poll never waits.
  void iterate(bool may_block);
  bool has_ready() const noexcept { return !ready_.empty(); }
  /// A runtime worker ran `n` task steps outside this loop's ready list:
  /// they count towards the next busy I/O poll.
  void count_steps(unsigned n) noexcept { busy_iterations_ += n; }
  bool inbox_nonempty() const noexcept { return inbox_count_.load(std::memory_order_seq_cst) > 0; }
  /// Any thread (a sample, for metrics).
  std::int64_t inbox_depth() const noexcept {
    return std::max<std::int64_t>(0, inbox_count_.load(std::memory_order_relaxed));
  }
  /// Owner thread: a completion from another thread is due soon (an offload
  /// was just submitted), so the next park spins first (see the top).
  void expect_remote_wake() noexcept {
    if (spin_backoff_.should_spin()) spin_deadline_ = Clock::now() + kRemoteWakeSpin;
  }

  void add_fd_callback(int fd, bool write, Callback cb);
  bool remove_fd_callback(int fd, bool write);

  void report(const ExceptionContext& ctx);

  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};
  std::atomic<bool> closed{false};
  /// Each task step's cooperative budget (see detail/coop.hpp); set before
  /// the loop runs any task.
  unsigned coop_budget = kCoopUnlimited;
  std::atomic<bool> debug{false};
  std::atomic<std::int64_t> slow_callback_ns{100'000'000};
  std::atomic<std::uint64_t> timer_seq{0};
  LoopCounters counters;
  /// The worker's probe when a step must publish itself (the stall detector,
  /// a poll hook or the histogram is on: worker_probe.hpp); null otherwise,
  /// and on a standalone loop. Set before the loop runs.
  WorkerProbe* step_probe = nullptr;

  std::mutex config_mu;
  ExceptionHandler exception_handler;          // guarded by config_mu
  std::shared_ptr<Executor> default_executor;  // guarded by config_mu

  Selector selector;

  /// Drops everything still queued (loop destruction, runtime teardown).
  void discard_queued() noexcept;
  /// A standalone loop's run_* returns: submit queued I/O requests.
  void finish_run() noexcept;

 private:
  struct InboxItem {
    Runnable* runnable;
    TimerEntry* timer;  // non-null: insert into the heap instead
  };
  struct FdEntry {
    HandleState* reader = nullptr;
    HandleState* writer = nullptr;
  };
  struct TimerLater {
    bool operator()(const TimerEntry* a, const TimerEntry* b) const noexcept {
      return a->when != b->when ? a->when > b->when : a->seq > b->seq;
    }
  };

  void enqueue_remote(InboxItem item) noexcept;
  void drain_inbox() noexcept;
  void insert_timer(TimerEntry* t);
  std::int64_t next_timeout_ns();
  void collect_due_timers();
  void sweep_cancelled_timers();
  void poll(std::int64_t timeout_ns);
  void run_ready_batch();
  /// Polls until remote work shows up (true) or `until` passes (false).
  bool spin_for_remote_wake(TimePoint until) noexcept;

  static constexpr unsigned kBusyPollInterval = 61;
  static constexpr Duration kRemoteWakeSpin = std::chrono::microseconds(50);
  TimePoint spin_deadline_{};     // owner-only: see expect_remote_wake()
  SpinBackoff spin_backoff_;      // owner-only: how often a hand-off spins
  unsigned busy_iterations_ = 0;  // iterations (and worker steps) since the last poll
  ReadyList ready_;
  std::vector<TimerEntry*> timers_;  // min-heap by (when, seq)
  std::size_t next_sweep_size_ = 1024;
  std::vector<FdEntry> fds_;
  std::vector<ReadyEvent> events_;
  moodycamel::ConcurrentQueue<InboxItem> inbox_;
  std::atomic<std::int64_t> inbox_count_{0};
  std::atomic<bool> parked_{false};
  std::atomic<std::thread::id> owner_;
  std::unique_ptr<TaskRegistry> owned_registry_;
};

/// What the executor's sources need of an EventLoop beyond its API.
struct LoopAccess {
  static LoopImpl& impl(EventLoop& loop) noexcept { return *loop.impl_; }
  static const LoopImpl& impl(const EventLoop& loop) noexcept { return *loop.impl_; }
  /// A worker's loop around `impl` (returned as a prvalue: EventLoop does not move).
  static EventLoop make(std::unique_ptr<LoopImpl> impl) { return EventLoop(std::move(impl)); }
};

/// The LoopImpl running on this thread (null outside a loop).
LoopImpl* current_loop_impl() noexcept;
/// Sets this thread's running loop for the scope.
class RunningLoopScope {
 public:
  explicit RunningLoopScope(LoopImpl* loop) noexcept;
  ~RunningLoopScope();

 private:
  LoopImpl* saved_;
};

}  // namespace weft::detail

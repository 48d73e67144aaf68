// Scheduler and Worker: see scheduler.hpp for the invariants.
#include "scheduler.hpp"
#include "introspect.hpp"
#include "stall_watch.hpp"

#include <weft/executor.hpp>

#include <algorithm>
#include <string>

namespace weft {
namespace detail {
namespace {
thread_local Worker* t_worker = nullptr;
constexpr unsigned kMaxWorkers = 1024;

unsigned resolve_workers(unsigned requested) {
  if (requested == 0) requested = workers_from_environment();
  if (requested == 0) requested = std::max(1u, std::thread::hardware_concurrency());
  if (requested > kMaxWorkers)
    throw ValueError("RunOptions::workers = " + std::to_string(requested) +
                     " is above the limit of 1024");
  return requested;
}
}  // namespace

Worker* current_worker() noexcept { return t_worker; }

// ---------------------------------------------------------------------- Worker

Worker::Worker(Scheduler* scheduler, unsigned index)
    : scheduler_(scheduler),
      index_(index),
      loop_(LoopAccess::make(
          std::make_unique<LoopImpl>(nullptr, this, scheduler, scheduler->options.loop))),
      run_queue_(scheduler->options.local_queue_capacity),
      lifo_enabled_(scheduler->options.lifo_slot),
      rng_(0x9E3779B9u * (index + 1)),
      probe_(
          scheduler->options, index,
          scheduler->options.stall_threshold.count() > 0 ? &scheduler->stall_inspecting : nullptr) {
  if (probe_.inspecting || probe_.slow) LoopAccess::impl(loop_).step_probe = &probe_;
}

void Worker::start() {
  thread_ = std::thread([this] { main(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::main() {
  t_worker = this;
  t_probe = &probe_;
  probe_.thread = pthread_self();
  probe_.thread_started.store(true, std::memory_order_release);
  started_ns_.store(std::chrono::duration_cast<Duration>(Clock::now().time_since_epoch()).count(),
                    std::memory_order_relaxed);
  LoopImpl& loop = LoopAccess::impl(loop_);
  loop.bind_owner_thread();
  loop.running.store(true, std::memory_order_release);
  RunningLoopScope scope(&loop);
  const unsigned budget = std::max(1u, scheduler_->options.event_interval);
  while (!scheduler_->stopped.load(std::memory_order_acquire)) {
    bump(probe_.iterations);
    notified_in_tick_ = false;
    // The asyncio iteration: inbox, I/O, timers, loop-affine callbacks and tasks.
    loop.iterate(false);
    // Stealable tasks, a bounded batch so the loop above keeps its rhythm.
    unsigned ran = 0;
    for (; ran < budget; ++ran) {
      TaskCore* task = next_local_task();
      if (!task) break;
      run_step(task);
    }
    loop.count_steps(ran);
    if (loop.has_ready() || !run_queue_.empty() || loop.inbox_nonempty()) continue;
    if (TaskCore* task = find_work()) {
      run_step(task);
      continue;
    }
    park();
  }
  loop.running.store(false, std::memory_order_release);
  t_probe = nullptr;
  t_worker = nullptr;
}

TaskCore* Worker::next_local_task() noexcept {
  // Every global_queue_interval ticks the injector goes first, so work
  // injected from outside cannot starve behind a busy local queue.
  if (++tick_ % scheduler_->options.global_queue_interval == 0) {
    if (TaskCore* t = scheduler_->pop_injected()) return t;
  }
  return run_queue_.pop();
}

void Worker::run_step(TaskCore* task) {
  in_step_ = true;
  task->run();
  // The LIFO slot: what the step woke last runs next, at most kMaxLifoSteps
  // in a row (Tokio's cap), so that two tasks waking each other cannot keep
  // the run queue waiting; the one left over takes its turn at the back.
  // The slot is empty again before this returns: it is never stolen, parked
  // on or left behind at shutdown.
  unsigned steps = 1;
  while (TaskCore* next = std::exchange(lifo_, nullptr)) {
    if (steps == kMaxLifoSteps + 1) {
      in_step_ = false;
      push_back_queue(next);
      break;
    }
    ++steps;
    next->run();
  }
  in_step_ = false;
}

void Worker::push_local(TaskCore* task, bool yielded) noexcept {
  if (lifo_enabled_ && in_step_ && !yielded) {
    // The previous occupant moves to the back of the queue, where it is
    // stealable: only then can a sibling help.
    task = std::exchange(lifo_, task);
    if (!task) return;
  }
  push_back_queue(task);
}

void Worker::push_back_queue(TaskCore* task) noexcept {
  bool overflowed = false;
  run_queue_.push_back(task, [&](TaskCore* t) {
    overflowed = true;
    scheduler_->injector_count_.fetch_add(1, std::memory_order_seq_cst);
    scheduler_->push_injected(t);
  });
  // Spawn batching: one check for an idle sibling per tick (the first push
  // that leaves work to steal), not one per push: the check is a fence, and a
  // burst of create_task or a worker full of yielding tasks would pay it on
  // every push. A sibling that parks after that check re-read the queues
  // first (scheduler.hpp); what is pushed after its re-read waits at most
  // one tick for the next check, or runs here. Nothing is lost either way.
  if (!searching_ && !notified_in_tick_ && (overflowed || run_queue_.len() > 1)) {
    notified_in_tick_ = true;
    scheduler_->notify_parked();
  }
}

TaskCore* Worker::find_work() noexcept {
  if (woken_as_searcher_.exchange(false, std::memory_order_acq_rel)) searching_ = true;
  if (TaskCore* t = scheduler_->pop_injected()) {
    if (searching_) transition_from_searching();
    return t;
  }
  if (!transition_to_searching()) return nullptr;
  TaskCore* t = steal();
  if (!t) t = scheduler_->pop_injected();
  if (t) transition_from_searching();
  return t;
}

bool Worker::transition_to_searching() noexcept {
  if (searching_) return true;
  std::size_t n = scheduler_->workers.size();
  // At most half of the workers search at once (Tokio, Go).
  auto& state = scheduler_->idle_state_;
  std::uint64_t s = state.load(std::memory_order_seq_cst);
  do {
    if (2 * static_cast<std::size_t>(Scheduler::searching_of(s)) >= n) return false;
  } while (
      !state.compare_exchange_weak(s, s + Scheduler::kOneSearching, std::memory_order_seq_cst));
  searching_ = true;
  return true;
}

void Worker::transition_from_searching() noexcept {
  searching_ = false;
  // The last searcher to find work hands the search over to a parked worker,
  // if there is work left to find (scheduler.hpp: read after the RMW).
  Scheduler& s = *scheduler_;
  std::uint64_t before =
      s.idle_state_.fetch_sub(Scheduler::kOneSearching, std::memory_order_seq_cst);
  Scheduler::fence_before_queue_reads();
  if (Scheduler::searching_of(before) == 1 && (s.injected() > 0 || s.any_stealable_work()))
    s.notify_parked();
}

TaskCore* Worker::steal() noexcept {
  auto& all = scheduler_->workers;
  std::size_t n = all.size();
  if (n < 2) return nullptr;
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 17;
  rng_ ^= rng_ << 5;
  std::size_t start = rng_ % n;
  for (std::size_t i = 0; i < n; ++i) {
    Worker* victim = all[(start + i) % n].get();
    if (victim == this) continue;
    steal_attempts_.fetch_add(1, std::memory_order_relaxed);
    std::uint32_t stolen = 0;
    if (TaskCore* t = victim->run_queue_.steal_into(run_queue_, stolen)) {
      steal_successes_.fetch_add(1, std::memory_order_relaxed);
      stolen_.fetch_add(stolen, std::memory_order_relaxed);
      return t;
    }
  }
  return nullptr;
}

void Worker::park() {
  Scheduler& s = *scheduler_;
  {
    std::lock_guard lock(s.idle_mu_);
    s.idle_.push_back(this);
    // ordering: seq_cst RMW on the shared word before re-reading the queues
    // (the lost-wake-up argument in scheduler.hpp).
    s.idle_state_.fetch_add(Scheduler::kOneIdle - (searching_ ? Scheduler::kOneSearching : 0),
                            std::memory_order_seq_cst);
    searching_ = false;
  }
  // ordering: the parker's half of the store-buffering pair (scheduler.hpp):
  // the RMW above, a seq_cst fence, then the queue reads below.
  Scheduler::fence_before_queue_reads();
  if (s.injected() > 0 || s.any_stealable_work() || s.stopped.load(std::memory_order_seq_cst)) {
    leave_idle();
    return;
  }
  const RunOptions& options = s.options;
  probe_.idle.store(true, std::memory_order_relaxed);
  if (options.on_worker_park) options.on_worker_park(index_);
  LoopAccess::impl(loop_).iterate(true);  // blocks in the selector until a timer, I/O or a wake-up
  if (options.on_worker_unpark) options.on_worker_unpark(index_);
  probe_.idle.store(false, std::memory_order_relaxed);
  bump(probe_.iterations);
  leave_idle();
}

void Worker::leave_idle() noexcept {
  Scheduler& s = *scheduler_;
  std::lock_guard lock(s.idle_mu_);
  auto it = std::find(s.idle_.begin(), s.idle_.end(), this);
  if (it != s.idle_.end()) {
    s.idle_.erase(it);
    s.idle_state_.fetch_sub(Scheduler::kOneIdle, std::memory_order_seq_cst);
  }
}

WorkerMetrics Worker::metrics() const {
  WorkerMetrics m;
  const LoopImpl& loop = LoopAccess::impl(loop_);
  const LoopCounters& c = loop.counters;
  auto get = [](const auto& counter) { return counter.load(std::memory_order_relaxed); };
  m.tasks_spawned = get(spawned_);
  m.steps_polled = get(probe_.polls) + get(c.steps);
  m.steal_attempts = get(steal_attempts_);
  m.steal_successes = get(steal_successes_);
  m.tasks_stolen = get(stolen_);
  m.parks = get(c.parks);
  m.remote_wakeups = get(c.remote_wakeups);
  m.io_events = get(c.io_events);
  m.io_readable = get(c.io_readable);
  m.io_writable = get(c.io_writable);
  m.io_ring_recvs = get(loop.selector.io_counters.ring_recvs);
  m.io_ring_sends = get(loop.selector.io_counters.ring_sends);
  m.io_ring_file_ops = get(loop.selector.io_counters.ring_file_ops);
  m.timers_armed = get(c.timers_armed);
  if (std::int64_t started = get(started_ns_); started != 0) {
    std::int64_t alive =
        std::chrono::duration_cast<Duration>(Clock::now().time_since_epoch()).count() - started;
    m.busy_time = std::chrono::nanoseconds(
        std::max<std::int64_t>(0, alive - static_cast<std::int64_t>(get(c.parked_ns))));
  }
  m.local_queue_depth = run_queue_.len();
  m.remote_queue_depth = get(c.ready_depth);
  m.inbox_depth = loop.inbox_depth();
  m.timers_pending = get(c.timers_pending);
  for (std::size_t i = 0; i < kPollTimeBuckets; ++i)
    m.poll_time_histogram[i] = get(probe_.poll_time[i]);
  m.poll_time_sum = std::chrono::nanoseconds(get(probe_.poll_time_sum_ns));
  return m;
}

// ------------------------------------------------------------------- Scheduler

Scheduler::Scheduler(const RunOptions& opts) : options(opts) {
  options.workers = resolve_workers(opts.workers);
  options.loop = resolve_loop_options(opts.loop);
  if (options.global_queue_interval == 0)
    throw ValueError("RunOptions::global_queue_interval must be > 0");
  workers.reserve(options.workers);
  for (unsigned i = 0; i < options.workers; ++i)
    workers.push_back(std::make_unique<Worker>(this, i));
  // Before the workers start: a bad path throws with no thread to join.
  if (!options.introspect.empty())
    introspect_server_ = std::make_unique<IntrospectServer>(*this, options.introspect);
  for (auto& w : workers) w->start();
  if (options.stall_threshold.count() > 0) stall_watch_ = std::make_unique<StallWatch>(*this);
}

Scheduler::~Scheduler() {
  stop_and_join();
  abandon_leftovers();
}

void Scheduler::inject(TaskCore* task) noexcept {
  // Count and notify first, publish last (as LoopImpl::enqueue_remote): a
  // foreign thread must not touch the scheduler once a worker can take the
  // task, run it to completion and let the runtime shut down. The count is
  // what parkers re-check (injected()), so it stands for "work exists" in the
  // lost-wake-up argument; pop_injected() tolerates a count that is ahead of
  // the queue.
  injector_count_.fetch_add(1, std::memory_order_seq_cst);
  notify_parked();
  push_injected(task);
}

void Scheduler::push_injected(TaskCore* task) noexcept {
  std::lock_guard lock(injector_mu_);
  // A deque grows by fixed blocks; running out of memory here leaves no way
  // to report it (a wake-up cannot fail), as for any allocation under noexcept.
  injector_.push_back(task);
}

TaskCore* Scheduler::pop_injected() noexcept {
  if (injector_count_.load(std::memory_order_acquire) <= 0) return nullptr;
  TaskCore* t = nullptr;
  {
    std::lock_guard lock(injector_mu_);
    if (injector_.empty()) return nullptr;  // counted, not pushed yet
    t = injector_.front();
    injector_.pop_front();
  }
  injector_count_.fetch_sub(1, std::memory_order_acq_rel);
  return t;
}

bool Scheduler::any_stealable_work() const noexcept {
  for (const auto& w : workers)
    if (!w->run_queue_.empty()) return true;
  return false;
}

void Scheduler::notify_parked() noexcept {
  // ordering: the pusher's half of the store-buffering pair in scheduler.hpp:
  // its queue write, a seq_cst fence, then this read of idle_state_.
  std::uint64_t s = read_idle_state_after_push();
  if (searching_of(s) != 0 || idle_of(s) == 0) return;
  unpark_one();
}

bool Scheduler::unpark_one() noexcept {
  Worker* w;
  {
    std::lock_guard lock(idle_mu_);
    if (idle_.empty() || searching_of(idle_state_.load(std::memory_order_seq_cst)) != 0)
      return false;
    w = idle_.back();
    idle_.pop_back();
    idle_state_.fetch_add(kOneSearching - kOneIdle, std::memory_order_seq_cst);
    // ordering: seq_cst store, then wake_if_parked's seq_cst read of parked_
    // (the pairing with LoopImpl::poll is in scheduler.hpp).
    w->woken_as_searcher_.store(true, std::memory_order_seq_cst);
  }
  LoopAccess::impl(w->loop_).wake_if_parked();
  return true;
}

bool Scheduler::cancel_all_and_wait(TimePoint deadline, std::vector<TaskRef>* cancelled) {
  for (;;) {
    std::vector<TaskRef> pending;
    registry.for_each([&](TaskCore* t) {
      if (!t->as_future().done()) pending.push_back(TaskAccess::make<TaskRef>(t));
    });
    if (pending.empty()) return true;
    for (TaskRef& t : pending) {
      // A task already cancelled once is not asked again each round.
      if (t.cancelling() == 0) t.cancel();
      if (cancelled) cancelled->push_back(t);
    }
    // Wait for this round; tasks created meanwhile are caught by the next one.
    for (TaskRef& t : pending) {
      while (!t.done()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }
}

void Scheduler::shutdown_executors() {
  for (auto& w : workers) {
    std::shared_ptr<Executor> executor;
    {
      LoopImpl& loop = LoopAccess::impl(w->loop_);
      std::lock_guard lock(loop.config_mu);
      executor = std::move(loop.default_executor);
    }
    if (executor) shutdown_executor(*executor);
  }
  std::shared_ptr<Executor> shared;
  {
    std::lock_guard lock(executor_mu);
    shared = std::move(default_executor);
  }
  if (shared) shutdown_executor(*shared);
}

void Scheduler::stop_and_join() {
  if (joined_) return;
  introspect_server_.reset();  // before the workers go: a request pauses them
  stall_watch_.reset();        // before the workers go: it signals their threads
  stopped.store(true, std::memory_order_seq_cst);
  for (auto& w : workers) LoopAccess::impl(w->loop_).force_wake();
  for (auto& w : workers) w->join();
  joined_ = true;
}

void Scheduler::abandon_leftovers() noexcept {
  // Queued pointers first: the tasks they point to are about to go.
  {
    std::lock_guard lock(injector_mu_);
    injector_.clear();
  }
  injector_count_.store(0);
  for (auto& w : workers)
    while (w->run_queue_.pop()) {
    }
  for (auto& w : workers) LoopAccess::impl(w->loop_).discard_queued();
  shutdown_abandon_tasks(registry);
  for (auto& w : workers) LoopAccess::impl(w->loop_).discard_queued();
}

void shutdown_abandon_tasks(TaskRegistry& registry) noexcept {
  registry.for_each([](TaskCore* t) { abandon_task(t); });
}

void abandon_task(TaskCore* task) noexcept {
  if (task->sched_.load(std::memory_order_acquire) == TaskCore::kDone) return;
  std::fprintf(stderr, "weft: Task was destroyed but it is pending: %s\n", task->name().c_str());
  task->sched_.store(TaskCore::kDone, std::memory_order_release);
  task->destroy_root();
  task->as_future().set_cancelled("the runtime was shut down while the task was pending");
  // Terminated too, as far as the hooks are concerned (on the thread that
  // shuts the runtime down: every worker has stopped).
  LoopImpl& loop = LoopAccess::impl(*task->home());
  if (loop.scheduler && loop.scheduler->options.on_task_terminate)
    loop.scheduler->options.on_task_terminate(TaskAccess::make<TaskMeta>(task));
  loop.registry->erase(task);
  task->as_future().release();
}

}  // namespace detail

}  // namespace weft

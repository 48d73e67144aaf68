// TaskCore: see detail/task_core.hpp for the state protocol.
#include <weft/detail/coop.hpp>
#include <weft/detail/future_state.hpp>
#include <weft/detail/task_core.hpp>
#include <weft/task.hpp>

#include <cstdio>
#include <utility>

#include "live_tasks.hpp"
#include "loop_impl.hpp"
#include "scheduler.hpp"
#include "task_registry.hpp"
#include "worker_probe.hpp"

namespace weft {
namespace detail {
namespace {
/// Awaits left in this step that may complete without suspending (coop.hpp).
constinit thread_local unsigned t_coop_budget = kCoopUnlimited;
}  // namespace

bool coop_take() noexcept {
  unsigned b = t_coop_budget;
  if (b == 0) return false;
  if (b != kCoopUnlimited) t_coop_budget = b - 1;
  return true;
}

bool coop_spent() noexcept { return t_coop_budget == 0; }

unsigned coop_reset(unsigned budget) noexcept { return std::exchange(t_coop_budget, budget); }

namespace {
thread_local TaskCore* t_current_task = nullptr;
/// Eager first steps nested on this thread's stack (a task started eagerly
/// that creates an eager task runs it inside its own step).
thread_local unsigned t_eager_depth = 0;
/// Deeper than this, a task starts lazily instead: a chain of tasks that each
/// create the next must not grow the stack without bound.
constexpr unsigned kMaxEagerDepth = 64;
}  // namespace

TaskCore* current_task_core() noexcept { return t_current_task; }

void TaskCore::root_returned() noexcept { t_current_task->resume_point_ = {}; }

std::uint32_t steady_ms32() noexcept {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  return static_cast<std::uint32_t>(ms.count());
}

TaskCore& require_task(const char* what) {
  if (!t_current_task) throw RuntimeError(std::string(what) + ": not called from inside a task");
  return *t_current_task;
}

TaskCore::TaskCore(EventLoop* home, bool affine) noexcept : home_(home), id_(0), affine_(affine) {
  live_tasks_add(1);
}

TaskCore::~TaskCore() { live_tasks_add(-1); }

bool must_run_on_home(EventLoop* home, bool pinned) noexcept {
  Scheduler* s = LoopAccess::impl(*home).scheduler;
  return pinned || s == nullptr || s->workers.size() == 1;
}

void launch_task(TaskCore* task, std::string name, std::optional<bool> eager) {
  LoopImpl& loop = LoopAccess::impl(*task->home());
  if (loop.scheduler && loop.scheduler->stopped.load(std::memory_order_acquire)) {
    task->as_future().release();
    task->as_future().release();
    throw RuntimeError("create_task: the runtime is shut down");
  }
  task->id_ = loop.registry->next_number();
  if (!name.empty()) task->cold().name = std::move(name);
  task->context_ = current_context();
  // Before the registry has it: a capture (another thread) reads it from there.
  if (loop.scheduler && loop.scheduler->record_task_age)
    task->root_promise()->born_ms_ = steady_ms32();
  loop.registry->insert(task);
  if (Worker* w = current_worker()) w->count_spawn();
  if (loop.scheduler && loop.scheduler->options.on_task_spawn)
    task_spawned(loop.scheduler->options, task);
  bool run_now = eager.value_or(loop.scheduler && loop.scheduler->options.eager_tasks) &&
                 current_loop_impl() == &loop && t_eager_depth < kMaxEagerDepth;
  if (!run_now) {
    task->wake();
    return;
  }
  // Eager start: this thread takes the task as if it had dequeued it (idle ->
  // scheduled, so that no wake can queue it meanwhile) and runs its first
  // step. run() saves and restores the creator's current task and context.
  task->sched_.store(TaskCore::kScheduled, std::memory_order_relaxed);
  struct Depth {
    Depth() noexcept { ++t_eager_depth; }
    ~Depth() { --t_eager_depth; }
  } depth;
  WorkerProbe* probe = t_probe;
  TaskCore* outer = probe ? probe->running.load(std::memory_order_relaxed) : nullptr;
  task->run();
  if (probe) probe->running.store(outer, std::memory_order_release);  // worker_probe.hpp
}

void TaskCore::wake() noexcept {
  State s = sched_.load(std::memory_order_acquire);
  for (;;) {
    switch (s) {
      case kIdle:
        // ordering: acq_rel — acquire the last step's frame writes (released by
        // its running->idle CAS) before handing the task to a queue.
        if (sched_.compare_exchange_weak(s, kScheduled, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
          schedule(/*yielded=*/false);
          return;
        }
        break;
      case kRunning:
        if (sched_.compare_exchange_weak(s, kNotified, std::memory_order_acq_rel,
                                         std::memory_order_acquire))
          return;
        break;
      default:
        return;  // scheduled, notified or done: this wake is already accounted for
    }
  }
}

void TaskCore::schedule(bool yielded) noexcept {
  if (affine_) {
    LoopAccess::impl(*home_).schedule(this);
    return;
  }
  Scheduler* scheduler = LoopAccess::impl(*home_).scheduler;
  Worker* w = current_worker();
  if (w && w->scheduler() == scheduler)
    w->push_local(this, yielded);
  else
    scheduler->inject(this);
}

void TaskCore::run() {
  sched_.store(kRunning, std::memory_order_relaxed);  // only the dequeuing thread writes here
  bool finished;
  {
    TaskCore* saved = t_current_task;
    t_current_task = this;
    ContextScope context_scope(&context_);
    LoopImpl* loop = current_loop_impl();
    bool debug = loop && loop->debug.load(std::memory_order_relaxed);
    TimePoint start = debug ? Clock::now() : TimePoint{};
    bool cancelled_before_start = false;
    if (!started_) {
      started_ = true;
      cancel_lock_.lock();
      cancelled_before_start = must_cancel_;
      cancel_lock_.unlock();
    }
    if (cancelled_before_start) {
      // TASK-08: cancelled before its first step, the body never runs.
      t_current_task = saved;
      finish(true);
      return;
    }
    StepProbe probe(this, loop);
    unsigned saved_budget = coop_reset(loop ? loop->coop_budget : kCoopUnlimited);
    resume_point_.resume();
    coop_reset(saved_budget);
    finished = !resume_point_;  // root_returned()
    t_current_task = saved;
    if (debug) {
      auto took = Clock::now() - start;
      if (took.count() >= loop->slow_callback_ns.load(std::memory_order_relaxed))
        std::fprintf(stderr, "weft: Executing <Task %s> took %.3f seconds\n", name().c_str(),
                     std::chrono::duration<double>(took).count());
    }
  }
  if (finished) {
    finish(false);
    return;
  }
  State expected = kRunning;
  // ordering: release publishes this step's frame writes to the next runner.
  if (!sched_.compare_exchange_strong(expected, kIdle, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
    // Woken during the step (notified): queue the next step now, behind
    // what is ready (a yield; never the LIFO slot).
    sched_.store(kScheduled, std::memory_order_relaxed);
    schedule(/*yielded=*/true);
  }
}

void TaskCore::finish(bool cancelled_before_start) {
  sched_.store(kDone, std::memory_order_release);
  finish_root(cancelled_before_start);
  if (WorkerProbe* probe = t_probe; probe && probe->on_finish) probe->task_finished(this);
  LoopAccess::impl(*home_).registry->erase(this);
  as_future().release();  // the runtime's reference
}

bool TaskCore::request_cancel(std::string message) {
  std::lock_guard lock(cancel_lock_);
  if (as_future().done() || sched_.load(std::memory_order_acquire) == kDone) return false;
  ++cancel_requests_;
  if (waiting_on_ && waiting_on_->cancel_wait(message)) {
    wait_cancelled_ = true;
    return true;
  }
  must_cancel_ = true;
  if (t_current_task == this) must_cancel_by_self_ = true;
  cold().cancel_message = std::move(message);
  return true;
}

void TaskCore::request_cancel_after_completion(std::string message) {
  std::lock_guard lock(cancel_lock_);
  if (as_future().done() || sched_.load(std::memory_order_acquire) == kDone) return;
  ++cancel_requests_;
  if (waiting_on_) {
    if (waiting_on_->cancel_wait(message)) {
      wait_cancelled_ = true;
      return;
    }
    // A target that refuses the cancellation although none reached it yet
    // has completed: the task is about to resume with what it produced. That
    // wait ends normally; the cancellation goes to the next suspension.
    if (!wait_cancelled_) deliver_completed_wait_ = true;
  }
  must_cancel_ = true;
  if (t_current_task == this) must_cancel_by_self_ = true;
  cold().cancel_message = std::move(message);
}

int TaskCore::cancelling() const {
  std::lock_guard lock(cancel_lock_);
  return cancel_requests_;
}

int TaskCore::uncancel() {
  std::lock_guard lock(cancel_lock_);
  if (cancel_requests_ > 0) {
    --cancel_requests_;
    // TASK-13 (3.13+): withdrawing the last request withdraws the pending cancellation.
    if (cancel_requests_ == 0) must_cancel_ = must_cancel_by_self_ = false;
  }
  return cancel_requests_;
}

void TaskCore::begin_wait(WaitTarget* target) {
  std::lock_guard lock(cancel_lock_);
  waiting_on_ = target;
  wait_cancelled_ = false;
  deliver_completed_wait_ = false;
  // TASK-09: a cancellation requested while running goes to what we now await.
  if (must_cancel_ && target && target->cancel_wait(cold().cancel_message)) {
    must_cancel_ = false;
    must_cancel_by_self_ = false;
    wait_cancelled_ = true;
  }
}

void TaskCore::end_wait() {
  std::string message;
  {
    std::lock_guard lock(cancel_lock_);
    waiting_on_ = nullptr;
    if (!must_cancel_) return;
    if (std::exchange(deliver_completed_wait_, false))
      return;  // see request_cancel_after_completion
    must_cancel_ = false;
    must_cancel_by_self_ = false;
    message = std::move(cold().cancel_message);
  }
  throw CancelledError(std::move(message));
}

void TaskCore::yield_suspend() {
  begin_wait(nullptr);
  wake();  // running -> notified: queued again behind what is ready now
}

void TaskCore::end_wait_keeping_cancel() noexcept {
  std::lock_guard lock(cancel_lock_);
  waiting_on_ = nullptr;
  deliver_completed_wait_ = false;
}

bool TaskCore::take_must_cancel(std::string& message) {
  std::lock_guard lock(cancel_lock_);
  if (!must_cancel_) return false;
  must_cancel_ = false;
  must_cancel_by_self_ = false;
  message = std::move(cold().cancel_message);
  return true;
}

bool TaskCore::take_self_cancel(std::string& message) {
  std::lock_guard lock(cancel_lock_);
  if (!must_cancel_) return false;
  bool by_self = must_cancel_by_self_;
  must_cancel_ = false;
  must_cancel_by_self_ = false;
  if (by_self) message = std::move(cold().cancel_message);
  return by_self;
}

std::string TaskCore::name() const {
  std::lock_guard lock(cancel_lock_);
  return cold_ && !cold_->name.empty() ? cold_->name : "Task-" + std::to_string(id_);
}

void TaskCore::set_name(std::string name) {
  std::lock_guard lock(cancel_lock_);
  cold().name = std::move(name);
}

TaskCore::Cold& TaskCore::cold() {
  if (!cold_) cold_ = std::make_unique<Cold>();
  return *cold_;
}

}  // namespace detail

// ----------------------------------------------------------------------- TaskRef

TaskRef::TaskRef(detail::TaskCore* core) noexcept : core_(core) {
  if (core_) core_->as_future().add_ref();
}
TaskRef::TaskRef(const TaskRef& other) noexcept : TaskRef(other.core_) {}
TaskRef& TaskRef::operator=(TaskRef other) noexcept {
  std::swap(core_, other.core_);
  return *this;
}
TaskRef::~TaskRef() {
  if (core_) core_->as_future().release();
}
static detail::TaskCore& checked(detail::TaskCore* c) {
  if (!c) throw InvalidStateError("use of an empty TaskRef");
  return *c;
}
std::string TaskRef::get_name() const { return checked(core_).name(); }
void TaskRef::set_name(std::string name) const { checked(core_).set_name(std::move(name)); }
bool TaskRef::done() const { return checked(core_).as_future().done(); }
bool TaskRef::cancelled() const { return checked(core_).as_future().cancelled(); }
bool TaskRef::cancel(std::string message) const {
  return checked(core_).request_cancel(std::move(message));
}
int TaskRef::cancelling() const { return checked(core_).cancelling(); }
int TaskRef::uncancel() const { return checked(core_).uncancel(); }

TaskRef current_task() { return detail::TaskAccess::make<TaskRef>(detail::current_task_core()); }

std::vector<TaskRef> all_tasks() {
  detail::LoopImpl* loop = detail::current_loop_impl();
  if (!loop) throw RuntimeError("all_tasks: no running event loop on this thread");
  std::vector<TaskRef> out;
  loop->registry->for_each([&](detail::TaskCore* t) {
    if (!t->as_future().done()) out.push_back(detail::TaskAccess::make<TaskRef>(t));
  });
  return out;
}

}  // namespace weft

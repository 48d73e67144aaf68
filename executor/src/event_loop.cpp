// EventLoop and LoopImpl: see loop_impl.hpp for the ownership and parking
// protocol, event_loop.hpp for the iteration model.
#include "loop_impl.hpp"

#include <weft/errors.hpp>
#include <weft/sleep.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <utility>

#include "scheduler.hpp"
#include "task_registry.hpp"

namespace weft {
namespace detail {
namespace {
thread_local LoopImpl* t_current_loop = nullptr;

std::int64_t to_ns(Duration d) { return d.count(); }
}  // namespace

LoopImpl* current_loop_impl() noexcept { return t_current_loop; }
EventLoop* current_loop() noexcept { return t_current_loop ? t_current_loop->self : nullptr; }

RunningLoopScope::RunningLoopScope(LoopImpl* loop) noexcept : saved_(t_current_loop) {
  t_current_loop = loop;
}
RunningLoopScope::~RunningLoopScope() { t_current_loop = saved_; }

void schedule_on_loop(EventLoop* loop, Runnable* r) noexcept {
  if (!loop) {
    r->run();
    return;
  }
  LoopAccess::impl(*loop).schedule(r);
}

TimePoint deadline_after(Duration delay) noexcept {
  // Saturating: now + delay must not overflow for delays near Duration::max() or min().
  TimePoint now = Clock::now();
  Duration since_epoch = now.time_since_epoch();
  if (delay > TimePoint::max() - now) return TimePoint::max();
  if (delay < -since_epoch) return TimePoint{};
  return now + delay;
}

bool debug_enabled() noexcept {
  if (LoopImpl* l = t_current_loop) return l->debug.load(std::memory_order_relaxed);
  static const bool env = debug_from_environment();
  return env;
}

void log_never_awaited(const char* function_name) {
  std::fprintf(stderr, "weft: coroutine '%s' was never awaited\n", function_name);
}

void report_unretrieved(EventLoop* loop, const std::exception_ptr& e,
                        const std::string& what_kind) {
  ExceptionContext ctx{what_kind + " exception was never retrieved", e, std::nullopt, std::nullopt};
  if (loop && current_loop() == loop) {
    loop->call_exception_handler(ctx);
  } else {
    std::fprintf(stderr, "weft: %s: %s\n", ctx.message.c_str(), describe_exception(e).c_str());
  }
}

// ---------------------------------------------------------------- HandleState

void HandleState::run() {
  if (!timer_cancelled()) {
    queued = false;
    LoopImpl* loop = loop_;
    bool debug = loop->debug.load(std::memory_order_relaxed);
    auto start = debug ? Clock::now() : TimePoint{};
    try {
      fn_();
    } catch (...) {
      add_ref();
      loop->report({"Exception in callback", std::current_exception(), std::nullopt, Handle(this)});
    }
    if (debug) {
      auto took = Clock::now() - start;
      if (took.count() >= loop->slow_callback_ns.load(std::memory_order_relaxed))
        std::fprintf(stderr, "weft: executing callback took %.3f seconds\n",
                     std::chrono::duration<double>(took).count());
    }
  }
  release();
}

// ------------------------------------------------------------------- LoopImpl

LoopImpl::LoopImpl(EventLoop* self_, Worker* worker_, Scheduler* scheduler_,
                   const LoopOptions& options_)
    : options(options_),
      self(self_),
      worker(worker_),
      scheduler(scheduler_),
      registry(nullptr),
      debug(*options_.debug),
      slow_callback_ns(options_.slow_callback_duration.count()),
      selector(*options_.io_uring, *options_.io_uring_multishot) {
  if (scheduler) {
    registry = &scheduler->registry;
    // asyncio's exact order at one worker unless asked for.
    unsigned budget =
        scheduler->options.coop_budget.value_or(scheduler->options.workers > 1 ? 128u : 0u);
    coop_budget = budget == 0 ? kCoopUnlimited : budget;
  } else {
    owned_registry_ = std::make_unique<TaskRegistry>();
    registry = owned_registry_.get();
  }
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

LoopImpl::~LoopImpl() { discard_queued(); }

void LoopImpl::discard_queued() noexcept {
  // Tasks are owned by the registry; only handle and timer references are dropped here.
  drain_inbox();
  while (Runnable* r = ready_.pop_front()) {
    if (auto* h = dynamic_cast<TimerEntry*>(r))
      h->release();
    else if (auto* c = dynamic_cast<CallbackNode*>(r)) {
      c->owner->release();
      delete c;
    }
  }
  for (TimerEntry* t : timers_) t->release();
  timers_.clear();
  for (FdEntry& e : fds_) {
    if (e.reader) e.reader->release();
    if (e.writer) e.writer->release();
    e = {};
  }
}

bool LoopImpl::on_owner_thread() const noexcept {
  if (t_current_loop == this) return true;
  // A runtime loop belongs to its worker thread only. A standalone loop that
  // is not running belongs to the thread that created or last ran it.
  if (worker) return false;
  return t_current_loop == nullptr && !running.load(std::memory_order_acquire) &&
         owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

void LoopImpl::bind_owner_thread() noexcept {
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

void LoopImpl::schedule(Runnable* r) noexcept {
  if (on_owner_thread()) {
    ready_.push_back(r);
    return;
  }
  enqueue_remote({r, nullptr});
}

void LoopImpl::add_timer(TimerEntry* t) {
  if (on_owner_thread()) {
    insert_timer(t);
    return;
  }
  enqueue_remote({nullptr, t});
}

void LoopImpl::enqueue_remote(InboxItem item) noexcept {
  // Count and wake first, publish last: once the item is in the inbox the
  // owner may run it (a task that then finishes, letting its runtime shut
  // down and destroy this loop), so a foreign producer must not touch the
  // loop after the enqueue. Found by TSan: a detached thread waking a task
  // was still in wake_if_parked() when ~EventLoop ran. A counted item not yet
  // enqueued only keeps the owner from parking (it polls with timeout 0)
  // until the enqueue lands.
  // ordering: seq_cst pairs with the owner's parked_ store / inbox_count_ load.
  inbox_count_.fetch_add(1, std::memory_order_seq_cst);
  wake_if_parked();
  tsan_handoff_release(&inbox_);
  // moodycamel allocates a block only when its current one is full; an
  // allocation failure here would lose the item, so retry until it goes in.
  while (!inbox_.enqueue(item)) std::this_thread::yield();
}

void LoopImpl::wake_if_parked() noexcept {
  if (parked_.load(std::memory_order_seq_cst) &&
      parked_.exchange(false, std::memory_order_acq_rel)) {
    counters.remote_wakeups.fetch_add(1, std::memory_order_relaxed);
    selector.wake();
  }
}

void LoopImpl::drain_inbox() noexcept {
  if (inbox_count_.load(std::memory_order_acquire) == 0) return;
  InboxItem items[64];
  std::size_t n;
  while ((n = inbox_.try_dequeue_bulk(items, 64)) != 0) {
    tsan_handoff_acquire(&inbox_);
    inbox_count_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_acq_rel);
    for (std::size_t i = 0; i < n; ++i) {
      if (items[i].timer)
        insert_timer(items[i].timer);
      else
        ready_.push_back(items[i].runnable);
    }
  }
}

void LoopImpl::insert_timer(TimerEntry* t) {
  t->seq = timer_seq.fetch_add(1, std::memory_order_relaxed);
  timers_.push_back(t);
  std::push_heap(timers_.begin(), timers_.end(), TimerLater{});
  bump(counters.timers_armed);
  counters.timers_pending.store(static_cast<std::int64_t>(timers_.size()),
                                std::memory_order_relaxed);
  if (timers_.size() >= next_sweep_size_) sweep_cancelled_timers();
}

void LoopImpl::sweep_cancelled_timers() {
  auto live_end = std::partition(timers_.begin(), timers_.end(),
                                 [](TimerEntry* t) { return !t->timer_cancelled(); });
  for (auto it = live_end; it != timers_.end(); ++it) (*it)->release();
  timers_.erase(live_end, timers_.end());
  std::make_heap(timers_.begin(), timers_.end(), TimerLater{});
  next_sweep_size_ = std::max<std::size_t>(1024, timers_.size() * 2);
}

std::int64_t LoopImpl::next_timeout_ns() {
  // LOOP-07: cancelled timers neither run nor shorten the poll.
  while (!timers_.empty() && timers_.front()->timer_cancelled()) {
    std::pop_heap(timers_.begin(), timers_.end(), TimerLater{});
    timers_.back()->release();
    timers_.pop_back();
  }
  if (timers_.empty()) return -1;
  auto left = timers_.front()->when - Clock::now();
  return std::max<std::int64_t>(0, to_ns(std::chrono::duration_cast<Duration>(left)));
}

void LoopImpl::collect_due_timers() {
  if (timers_.empty()) return;
  TimePoint now = Clock::now();
  while (!timers_.empty() && timers_.front()->when <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), TimerLater{});
    TimerEntry* t = timers_.back();
    timers_.pop_back();
    if (t->timer_cancelled())
      t->release();
    else
      ready_.push_back(t);  // the heap's reference passes to the ready list
  }
  counters.timers_pending.store(static_cast<std::int64_t>(timers_.size()),
                                std::memory_order_relaxed);
}

bool LoopImpl::spin_for_remote_wake(TimePoint until) noexcept {
  // ordering: only hints, read before the parking protocol re-checks them.
  return spin_until(until, [this] {
    return inbox_count_.load(std::memory_order_relaxed) > 0 ||
           stopping.load(std::memory_order_relaxed) ||
           (scheduler && (scheduler->injected() > 0 || worker->unpark_requested() ||
                          scheduler->stopped.load(std::memory_order_relaxed)));
  });
}

void LoopImpl::poll(std::int64_t timeout_ns) {
  if (timeout_ns != 0 && spin_deadline_ != TimePoint{}) {
    // Spin before parking when an offload's completion is due (loop_impl.hpp).
    TimePoint until = std::exchange(spin_deadline_, TimePoint{});
    const TimePoint timer_due = Clock::now() + std::chrono::nanoseconds(timeout_ns);
    if (timeout_ns > 0) until = std::min(until, timer_due);
    const bool woken = spin_for_remote_wake(until);
    spin_backoff_.record(woken);
    if (woken) {
      timeout_ns = 0;
    } else {
      // The spin used up part of the wait for the next timer.
      if (timeout_ns > 0)
        timeout_ns = std::max<std::int64_t>(
            0, to_ns(std::chrono::duration_cast<Duration>(timer_due - Clock::now())));
    }
  }
  if (timeout_ns != 0) {
    // ordering: seq_cst store/load pair with enqueue_remote (see loop_impl.hpp).
    parked_.store(true, std::memory_order_seq_cst);
    if (inbox_count_.load(std::memory_order_seq_cst) > 0 ||
        stopping.load(std::memory_order_seq_cst) ||
        (worker && worker->unpark_requested(std::memory_order_seq_cst))) {
      parked_.store(false, std::memory_order_relaxed);
      timeout_ns = 0;
    } else {
      counters.parks.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (timeout_ns == 0) {
    // Nothing registered: skip the syscall. With work ready, poll only every
    // kBusyPollInterval iterations (Tokio's event_interval): a zero-timeout
    // epoll_wait costs about a microsecond, more than a task step, and the
    // loop polls anyway as soon as it runs out of work.
    if (!selector.has_io()) return;
    if (++busy_iterations_ < kBusyPollInterval) {  // also advanced by count_steps()
      selector.submit_queued();  // sends queued this iteration leave now, in one call
      return;
    }
  }
  busy_iterations_ = 0;
  events_.clear();
  // Busy time (WorkerMetrics::busy_time) is the loop's life less this wait:
  // the clock is read only around a wait that may block.
  TimePoint wait_start = timeout_ns != 0 ? Clock::now() : TimePoint{};
  selector.wait(timeout_ns, events_);
  if (timeout_ns != 0)
    bump(counters.parked_ns,
         static_cast<std::uint64_t>(
             std::chrono::duration_cast<Duration>(Clock::now() - wait_start).count()));
  parked_.store(false, std::memory_order_relaxed);
  counters.io_events.fetch_add(events_.size(), std::memory_order_relaxed);
  for (const ReadyEvent& ev : events_) {
    if (static_cast<std::size_t>(ev.fd) >= fds_.size()) continue;
    FdEntry& e = fds_[ev.fd];
    if (ev.readable && e.reader && !e.reader->queued && !e.reader->timer_cancelled()) {
      e.reader->queued = true;
      bump(counters.io_readable);
      e.reader->add_ref();
      ready_.push_back(e.reader);
    }
    if (ev.writable && e.writer && !e.writer->queued && !e.writer->timer_cancelled()) {
      e.writer->queued = true;
      bump(counters.io_writable);
      e.writer->add_ref();
      ready_.push_back(e.writer);
    }
  }
}

void LoopImpl::run_ready_batch() {
  // LOOP-02: exactly the callbacks ready now; those they queue run next iteration.
  std::size_t n = ready_.size();
  counters.ready_depth.store(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    Runnable* r = ready_.pop_front();
    r->run();
  }
}

void LoopImpl::finish_run() noexcept {
  try {
    selector.submit_queued();  // what the last iteration wrote leaves before the loop rests
  } catch (const std::system_error&) {
    // Stays queued: the next run submits it.
  }
}

void LoopImpl::iterate(bool may_block) {
  drain_inbox();
  std::int64_t timeout = -1;
  if (!may_block || !ready_.empty() || stopping.load(std::memory_order_relaxed)) {
    timeout = 0;
    if (!timers_.empty() && timers_.front()->timer_cancelled()) next_timeout_ns();
  } else {
    timeout = next_timeout_ns();
  }
  poll(timeout);
  collect_due_timers();
  run_ready_batch();
}

void LoopImpl::add_fd_callback(int fd, bool write, Callback cb) {
  if (fd < 0)
    throw ValueError("add_" + std::string(write ? "writer" : "reader") + ": invalid fd " +
                     std::to_string(fd));
  if (static_cast<std::size_t>(fd) >= fds_.size()) fds_.resize(fd + 1);
  FdEntry& e = fds_[fd];
  HandleState*& slot = write ? e.writer : e.reader;
  auto* h = new HandleState(this, std::move(cb));
  HandleState* old = slot;
  slot = h;
  try {
    selector.set_interest(fd, e.reader != nullptr, e.writer != nullptr);
  } catch (...) {
    slot = old;
    h->release();
    throw;
  }
  if (old) {
    old->cancel();
    old->release();
  }
}

bool LoopImpl::remove_fd_callback(int fd, bool write) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return false;
  FdEntry& e = fds_[fd];
  HandleState*& slot = write ? e.writer : e.reader;
  if (!slot) return false;
  HandleState* old = slot;
  slot = nullptr;
  old->cancel();
  old->release();
  selector.set_interest(fd, e.reader != nullptr, e.writer != nullptr);
  return true;
}

void LoopImpl::report(const ExceptionContext& ctx) { self->call_exception_handler(ctx); }

}  // namespace detail

// ---------------------------------------------------------------------- Handle

Handle::Handle(detail::HandleState* state) noexcept : state_(state) {}
Handle::Handle(const Handle& other) noexcept : state_(other.state_) {
  if (state_) state_->add_ref();
}
Handle& Handle::operator=(Handle other) noexcept {
  std::swap(state_, other.state_);
  return *this;
}
Handle::~Handle() {
  if (state_) state_->release();
}
void Handle::cancel() const {
  if (state_) state_->cancel();
}
bool Handle::cancelled() const { return state_ && state_->timer_cancelled(); }
TimePoint TimerHandle::when() const {
  if (!state_) throw InvalidStateError("TimerHandle::when: empty handle");
  return state_->when;
}

// ------------------------------------------------------------------- EventLoop

EventLoop::EventLoop(LoopOptions options)
    : impl_(std::make_unique<detail::LoopImpl>(this, nullptr, nullptr,
                                               detail::resolve_loop_options(options))) {}

const LoopOptions& EventLoop::options() const noexcept { return impl_->options; }
EventLoop::EventLoop(std::unique_ptr<detail::LoopImpl> impl) : impl_(std::move(impl)) {
  impl_->self = this;
}

EventLoop::~EventLoop() {
  if (!impl_->worker) {
    // Tasks of a standalone loop that never finished: their frames go with the loop.
    detail::shutdown_abandon_tasks(*impl_->registry);
  }
}

void EventLoop::check_open(const char* what) const {
  if (impl_->closed.load(std::memory_order_acquire))
    throw RuntimeError(std::string(what) + ": Event loop is closed");
}
void EventLoop::check_not_running(const char* what) const {
  if (impl_->worker)
    throw RuntimeError(
        std::string(what) +
        ": this loop is driven by a runtime worker; use Runtime::block_on or create_task");
  if (impl_->running.load(std::memory_order_acquire) || detail::current_loop())
    throw RuntimeError(std::string(what) + ": this event loop is already running (nested run)");
}

Handle EventLoop::call_soon(Callback cb) {
  check_open("call_soon");
  auto* h = new detail::HandleState(impl_.get(), std::move(cb));
  h->add_ref();  // the returned handle's
  impl_->schedule(h);
  return Handle(h);
}

Handle EventLoop::call_soon_threadsafe(Callback cb) { return call_soon(std::move(cb)); }

TimerHandle EventLoop::call_at(TimePoint when, Callback cb) {
  check_open("call_at");
  auto* h = new detail::HandleState(impl_.get(), std::move(cb));
  h->when = when;
  h->add_ref();
  impl_->add_timer(h);
  return TimerHandle(h);
}

TimerHandle EventLoop::call_later(Duration delay, Callback cb) {
  // LOOP-04: no clamping to zero; call_later(-1s) and call_later(-2s) fire by deadline.
  return call_at(detail::deadline_after(delay), std::move(cb));
}

TimePoint EventLoop::time() const { return Clock::now(); }

void EventLoop::run_forever() {
  check_open("run_forever");
  check_not_running("run_forever");
  impl_->bind_owner_thread();
  impl_->running.store(true, std::memory_order_release);
  detail::RunningLoopScope scope(impl_.get());
  struct Reset {
    detail::LoopImpl* l;
    ~Reset() {
      l->finish_run();
      l->stopping.store(false, std::memory_order_relaxed);
      l->running.store(false, std::memory_order_release);
    }
  } reset{impl_.get()};
  // LOOP-08: a stop() before run_forever still runs exactly one iteration.
  do {
    impl_->iterate(true);
  } while (!impl_->stopping.load(std::memory_order_acquire));
}

void EventLoop::run_until_done(detail::FutureBase& future) {
  check_open("run_until_complete");
  check_not_running("run_until_complete");
  impl_->bind_owner_thread();
  impl_->running.store(true, std::memory_order_release);
  detail::RunningLoopScope scope(impl_.get());
  struct Reset {
    detail::LoopImpl* l;
    ~Reset() {
      l->finish_run();
      l->stopping.store(false, std::memory_order_relaxed);
      l->running.store(false, std::memory_order_release);
    }
  } reset{impl_.get()};
  while (!future.done()) {
    if (impl_->stopping.load(std::memory_order_acquire))
      throw RuntimeError("run_until_complete: Event loop stopped before Future completed.");
    // A future completed from another thread wakes us through its done callback.
    impl_->iterate(true);
  }
}

void EventLoop::stop() {
  impl_->stopping.store(true, std::memory_order_seq_cst);
  impl_->wake_if_parked();
}

bool EventLoop::is_running() const { return impl_->running.load(std::memory_order_acquire); }

void EventLoop::close() {
  if (impl_->running.load(std::memory_order_acquire))
    throw RuntimeError("close: cannot close a running event loop");
  if (impl_->closed.exchange(true)) return;
  std::shared_ptr<Executor> executor;
  {
    std::lock_guard lock(impl_->config_mu);
    executor = std::move(impl_->default_executor);
  }
  if (executor) detail::shutdown_executor(*executor);
}

bool EventLoop::is_closed() const { return impl_->closed.load(std::memory_order_acquire); }

void EventLoop::set_default_executor(std::shared_ptr<Executor> executor) {
  std::lock_guard lock(impl_->config_mu);
  impl_->default_executor = std::move(executor);
}

void EventLoop::add_reader(int fd, Callback cb) {
  check_open("add_reader");
  if (impl_->on_owner_thread()) return impl_->add_fd_callback(fd, false, std::move(cb));
  call_soon([this, fd, cb = std::move(cb)]() mutable {
    impl_->add_fd_callback(fd, false, std::move(cb));
  });
}
void EventLoop::add_writer(int fd, Callback cb) {
  check_open("add_writer");
  if (impl_->on_owner_thread()) return impl_->add_fd_callback(fd, true, std::move(cb));
  call_soon([this, fd, cb = std::move(cb)]() mutable {
    impl_->add_fd_callback(fd, true, std::move(cb));
  });
}
bool EventLoop::remove_reader(int fd) {
  if (impl_->on_owner_thread()) return impl_->remove_fd_callback(fd, false);
  call_soon([this, fd] { impl_->remove_fd_callback(fd, false); });
  return true;
}
bool EventLoop::remove_writer(int fd) {
  if (impl_->on_owner_thread()) return impl_->remove_fd_callback(fd, true);
  call_soon([this, fd] { impl_->remove_fd_callback(fd, true); });
  return true;
}

void EventLoop::set_debug(bool enabled) { impl_->debug.store(enabled); }
bool EventLoop::get_debug() const { return impl_->debug.load(); }
void EventLoop::set_slow_callback_duration(Duration d) { impl_->slow_callback_ns.store(d.count()); }
Duration EventLoop::slow_callback_duration() const {
  return Duration(impl_->slow_callback_ns.load());
}

void EventLoop::set_exception_handler(ExceptionHandler handler) {
  std::lock_guard lock(impl_->config_mu);
  impl_->exception_handler = std::move(handler);
}

void EventLoop::call_exception_handler(const ExceptionContext& context) {
  ExceptionHandler handler;
  {
    std::lock_guard lock(impl_->config_mu);
    handler = impl_->exception_handler;
  }
  if (!handler) return default_exception_handler(context);
  try {
    handler(*this, context);
  } catch (...) {
    // LOOP-13: a handler that throws is logged and the loop goes on.
    ExceptionContext broken{"Unhandled error in exception handler", std::current_exception(),
                            std::nullopt, std::nullopt};
    default_exception_handler(broken);
    default_exception_handler(context);
  }
}

void EventLoop::default_exception_handler(const ExceptionContext& context) {
  std::string line = "weft: " + context.message;
  if (context.task) line += " (task " + context.task->get_name() + ")";
  if (context.exception) line += ": " + describe_exception(context.exception);
  line += "\n";
  std::fputs(line.c_str(), stderr);
}

EventLoop& get_running_loop() {
  EventLoop* loop = detail::current_loop();
  if (!loop) throw RuntimeError("get_running_loop: no running event loop on this thread");
  return *loop;
}

}  // namespace weft

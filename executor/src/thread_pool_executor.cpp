// ThreadPoolExecutor: an elastic pool in the manner of Tokio's blocking pool
// (tokio/src/runtime/blocking/pool.rs).
//
// Invariants. Every field of Synced is written only under mutex_ and, but
// for the lock-free polling of spinning threads described below, read only
// under it.
//
// A thread is in one of three states:
//   busy     draining the queue; it runs each function with mutex_ released
//            and retakes mutex_ to pop the next one;
//   waiting  out of work: first spinning (counted in `spinning`; it polls
//            `notified` and `shut_down` with mutex_ released, for at most
//            options_.spin), then blocked on work_cv_. It is counted in
//            `idle` until a submitter hands it a wake-up, then in `notified`
//            until some waiting thread takes one;
//   exiting  left its loop; `alive` no longer counts it.
// So alive == busy + idle + notified-but-not-yet-running, and
// idle + notified == the number of waiting threads == spinning + blocked.
//
// submit() pushes the function, then: if idle > 0 it moves one thread from
// idle to notified; if now notified <= spinning, that is all (a spinner takes
// it: a spinner stops spinning only under mutex_, and takes a wake-up then if
// one is left, so `spinning` spinners take at least min(notified, spinning)
// wake-ups without being signalled); otherwise a thread is blocked
// (blocked == idle + notified - spinning > 0) and it wakes one waiter. Any
// waiting thread that finds notified > 0 (spinning or woken) takes one wake-up
// and drains the queue; a waiter that wakes with notified == 0 was woken
// spuriously, by the deadline, or lost its wake-up to a spinner that took it
// first, and does not take the work of another. Else if alive < max_workers
// submit() starts a thread (under mutex_, so the new thread cannot look at
// its handle before it is stored); else the function waits in the queue. No
// function is ever stranded: a thread goes idle only after finding the queue
// empty under the same hold of mutex_, and a push made while no thread is
// idle is found by a thread that is busy or notified, or by the thread
// started for it.
//
// Spinning is bounded: at most max_spinning_ threads spin at once, each once
// per idle period and for at most min(options_.spin, keep_alive), so an idle
// pool is blocked on work_cv_ (no CPU) soon after its last function; spins
// that find nothing make the next ones rarer (note_spin_outcome).
//
// Retirement: an idle thread whose keep_alive deadline passes with no wake-up
// handed to it (and no shutdown) removes its handle from `threads`, swaps it
// into `last_retired` and, after releasing mutex_, joins the thread that was
// there before. So at most one retired thread is ever unjoined, and each
// handle is joined exactly once, by the next retiree or by shutdown.
//
// Shutdown order: shutdown() sets shut_down and wakes every waiter; from then
// on submit() throws and no thread retires. Threads drain the queue (queued
// functions still run, as concurrent.futures with cancel_futures=False) and
// exit. The first shutdown(true) caller sets `joining`, takes `threads` and
// `last_retired` and joins them outside mutex_ (a joined retiree has joined
// its own predecessor), then sets `joined`; any other shutdown(true) caller
// waits on joined_cv_ for it.
#include <weft/errors.hpp>
#include <weft/thread_pool_executor.hpp>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "spin_wait.hpp"

namespace weft {
namespace {

// The pool (its Impl) whose thread this is; lets shutdown(true) refuse to
// wait for itself.
thread_local const void* current_pool = nullptr;

void run_reporting_exceptions(std::function<void()>& fn) noexcept {
  try {
    fn();
  } catch (...) {
    // run_in_executor never gets here: it stores the exception in its future.
    std::fprintf(stderr, "weft::ThreadPoolExecutor: a submitted function threw: %s\n",
                 describe_exception(std::current_exception()).c_str());
  }
}

ThreadPoolExecutor::Options validated(ThreadPoolExecutor::Options options) {
  if (options.max_workers == 0)
    throw ValueError("ThreadPoolExecutor: max_workers must be at least 1");
  if (options.keep_alive < std::chrono::nanoseconds::zero())
    throw ValueError("ThreadPoolExecutor: keep_alive must not be negative");
  if (options.spin < std::chrono::nanoseconds::zero())
    throw ValueError("ThreadPoolExecutor: spin must not be negative");
  return options;
}

// Spinning helps only when the submitter runs on another CPU.
std::size_t max_spinning_for(const ThreadPoolExecutor::Options& options) {
  const unsigned cpus = std::thread::hardware_concurrency();
  if (options.spin == std::chrono::nanoseconds::zero() || cpus < 2) return 0;
  return std::max(1u, cpus / 4);
}

// How a thread out of work spins and backs off: spin_wait.hpp. (Measured on
// the 2-vCPU VM, bench/results/offload-*: a tight pause loop gave round trips
// of 110 us, sched_yield 0.1-3 ms under EEVDF.)

// Takes mutex_ for the hand-off paths (submit, a thread back from a function
// or from spinning). The critical sections are a few hundred nanoseconds, so
// a short try_lock spin first: a spinner sees `notified` change while the
// submitter still holds mutex_, and blocking there would turn that collision
// into a futex sleep and wake-up, the very cost the spinning avoids.
void lock_spinning(std::unique_lock<std::mutex>& lock) {
  for (int i = 0; i < 128; ++i) {
    if (lock.try_lock()) return;
    detail::cpu_relax();
  }
  lock.lock();
}

std::chrono::steady_clock::time_point saturating_deadline(std::chrono::nanoseconds delay) {
  const auto now = std::chrono::steady_clock::now();
  if (delay >= std::chrono::steady_clock::time_point::max() - now)
    return std::chrono::steady_clock::time_point::max();
  return now + delay;
}

}  // namespace

struct ThreadPoolExecutor::Impl {
  explicit Impl(Options options)
      : options_(validated(std::move(options))), max_spinning_(max_spinning_for(options_)) {}

  void submit(std::function<void()> fn);
  void shutdown(bool wait);
  Stats stats() const;

  using Threads = std::list<std::thread>;
  /// Everything guarded by mutex_ (the invariants are stated at the top of
  /// this file). notified and shut_down are atomics only so that spinning
  /// threads can poll them without the lock; they too are written only under
  /// mutex_.
  struct Synced {
    std::deque<std::function<void()>> queue;
    Threads threads;                          // handles of threads that have not retired
    std::optional<std::thread> last_retired;  // joined by the next retiree or by shutdown
    std::size_t alive = 0;                    // threads started and not yet exiting
    std::size_t idle = 0;      // waiting (spinning or on work_cv_), not handed a wake-up
    std::size_t spinning = 0;  // waiting threads that poll instead of blocking
    std::atomic<std::size_t> notified{0};  // wake-ups handed out, not yet taken by a waiting thread
    std::uint64_t spawned_total = 0;
    std::uint64_t retired_total = 0;
    std::uint64_t completed_total = 0;
    std::uint64_t wakeups_total = 0;
    std::uint64_t spin_handoffs_total = 0;
    detail::SpinBackoff spin_backoff;  // how often a thread out of work spins
    std::atomic<bool> shut_down{false};
    bool joining = false;  // a shutdown(true) caller has taken the handles to join
    bool joined = false;   // ... and has joined them all
  };

  void spawn_thread(Synced& synced);  // with mutex_ held
  void run_thread(Threads::iterator self);

  const Options options_;
  const std::size_t max_spinning_;  // 0: spinning disabled
  mutable std::mutex mutex_;
  std::condition_variable work_cv_;    // idle threads wait here for work or shutdown
  std::condition_variable joined_cv_;  // shutdown(true) callers wait here for the joiner
  Synced synced_;                      // guarded by mutex_
};

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers)
    : ThreadPoolExecutor(Options{.max_workers = max_workers}) {}

ThreadPoolExecutor::ThreadPoolExecutor(Options options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ThreadPoolExecutor::~ThreadPoolExecutor() { shutdown(true); }

void ThreadPoolExecutor::submit(std::function<void()> fn) { impl_->submit(std::move(fn)); }
void ThreadPoolExecutor::shutdown(bool wait) { impl_->shutdown(wait); }
ThreadPoolExecutor::Stats ThreadPoolExecutor::stats() const { return impl_->stats(); }
const ThreadPoolExecutor::Options& ThreadPoolExecutor::options() const noexcept {
  return impl_->options_;
}

void ThreadPoolExecutor::Impl::submit(std::function<void()> fn) {
  if (!fn) throw ValueError("ThreadPoolExecutor::submit: empty function");
  std::unique_lock lock(mutex_, std::defer_lock);
  lock_spinning(lock);
  Synced& s = synced_;
  if (s.shut_down.load(std::memory_order_relaxed))
    throw RuntimeError("ThreadPoolExecutor::submit: executor is shut down");
  s.queue.push_back(std::move(fn));
  if (s.idle > 0) {
    --s.idle;
    // ordering: relaxed is enough; mutex_ orders `notified` for every thread
    // that acts on it, a spinner's lock-free load only tells it to take mutex_.
    const std::size_t notified = s.notified.load(std::memory_order_relaxed) + 1;
    s.notified.store(notified, std::memory_order_relaxed);
    if (notified <= s.spinning) {
      ++s.spin_handoffs_total;  // a spinner takes it: no system call on either side
      return;
    }
    ++s.wakeups_total;
    lock.unlock();
    // Outside the lock, so the woken thread does not block on mutex_ at once.
    work_cv_.notify_one();
    return;
  }
  if (s.alive == options_.max_workers) return;
  try {
    spawn_thread(s);
  } catch (const std::exception& e) {
    if (s.alive == 0) {
      s.queue.pop_back();
      throw;
    }
    std::fprintf(stderr,
                 "weft::ThreadPoolExecutor: could not start a thread (%s); the function waits "
                 "for one of the %zu running threads\n",
                 e.what(), s.alive);
  }
}

void ThreadPoolExecutor::Impl::spawn_thread(Synced& s) {
  // The node first: if that allocation fails, no thread has started.
  const auto self = s.threads.emplace(s.threads.end());
  try {
    *self = std::thread([this, self] { run_thread(self); });
  } catch (...) {
    s.threads.erase(self);
    throw;
  }
  ++s.alive;
  ++s.spawned_total;
}

void ThreadPoolExecutor::Impl::run_thread(Threads::iterator self) {
  current_pool = this;
  pthread_setname_np(pthread_self(), options_.thread_name_prefix.substr(0, 15).c_str());
  std::optional<std::thread> predecessor;
  std::unique_lock lock(mutex_);
  Synced& s = synced_;
  for (;;) {
    while (!s.queue.empty()) {
      std::function<void()> fn = std::move(s.queue.front());
      s.queue.pop_front();
      lock.unlock();
      run_reporting_exceptions(fn);
      fn = nullptr;  // what it captured is destroyed outside the lock too
      lock_spinning(lock);
      ++s.completed_total;
    }
    if (s.shut_down.load(std::memory_order_relaxed)) break;

    // Waiting: until a wake-up is handed to this thread, shutdown, or
    // keep_alive; spinning first when fewer than max_spinning_ threads spin.
    ++s.idle;
    const auto deadline = saturating_deadline(options_.keep_alive);
    bool may_spin = false;
    if (s.spinning < max_spinning_) may_spin = s.spin_backoff.should_spin();
    bool timed_out = false;
    bool retire = false;
    for (;;) {
      const std::size_t notified = s.notified.load(std::memory_order_relaxed);
      if (notified > 0) {  // a submitter has already taken a thread out of `idle`
        s.notified.store(notified - 1, std::memory_order_relaxed);
        break;
      }
      const bool shut_down = s.shut_down.load(std::memory_order_relaxed);
      if (shut_down || timed_out) {
        --s.idle;
        retire = !shut_down;
        break;
      }
      if (may_spin) {
        may_spin = false;
        ++s.spinning;
        lock.unlock();
        // ordering: relaxed loads of fields written under mutex_; the thread
        // takes mutex_ next and decides on what it reads then.
        detail::spin_until(std::min(deadline, saturating_deadline(options_.spin)), [&s] {
          return s.notified.load(std::memory_order_relaxed) != 0 ||
                 s.shut_down.load(std::memory_order_relaxed);
        });
        lock_spinning(lock);
        --s.spinning;
        s.spin_backoff.record(s.notified.load(std::memory_order_relaxed) > 0);
        timed_out = std::chrono::steady_clock::now() >= deadline;
        continue;
      }
      timed_out = work_cv_.wait_until(lock, deadline) == std::cv_status::timeout;
    }
    if (retire) {
      ++s.retired_total;
      predecessor = std::exchange(s.last_retired, std::move(*self));
      s.threads.erase(self);
      break;
    }
  }
  --s.alive;
  lock.unlock();
  if (predecessor) predecessor->join();
}

void ThreadPoolExecutor::Impl::shutdown(bool wait) {
  if (wait && current_pool == this)
    throw RuntimeError(
        "ThreadPoolExecutor::shutdown: cannot wait on one of the pool's own threads");
  std::unique_lock lock(mutex_);
  Synced& s = synced_;
  if (!s.shut_down.load(std::memory_order_relaxed)) {
    s.shut_down.store(true, std::memory_order_relaxed);
    work_cv_.notify_all();
  }
  if (!wait) return;
  if (s.joining) {
    joined_cv_.wait(lock, [&] { return s.joined; });
    return;
  }
  s.joining = true;
  Threads threads = std::move(s.threads);
  std::optional<std::thread> last_retired = std::exchange(s.last_retired, std::nullopt);
  lock.unlock();
  for (std::thread& t : threads) t.join();
  if (last_retired) last_retired->join();
  lock.lock();
  s.joined = true;
  joined_cv_.notify_all();
}

ThreadPoolExecutor::Stats ThreadPoolExecutor::Impl::stats() const {
  std::lock_guard lock(mutex_);
  const Synced& s = synced_;
  return Stats{.threads = s.alive,
               .idle = s.idle,
               .busy = s.alive - s.idle,
               .spinning = s.spinning,
               .queued = s.queue.size(),
               .spawned_total = s.spawned_total,
               .retired_total = s.retired_total,
               .completed_total = s.completed_total,
               .wakeups_total = s.wakeups_total,
               .spin_handoffs_total = s.spin_handoffs_total};
}

}  // namespace weft

// ThreadPoolExecutor: an elastic pool in the manner of Tokio's blocking pool
// (tokio/src/runtime/blocking/pool.rs).
//
// Invariants. Every field of Synced is read and written only under mutex_.
//
// A thread is in one of three states:
//   busy     draining the queue; it runs each function with mutex_ released
//            and retakes mutex_ to pop the next one;
//   idle     waiting on work_cv_ (counted in `idle` until a submitter hands
//            it a wake-up, then in `notified` until it wakes and takes it);
//   exiting  left its loop; `alive` no longer counts it.
// So alive == busy + idle + notified-but-not-yet-running, and
// idle + notified == the number of threads waiting on work_cv_.
//
// submit() pushes the function, then: if idle > 0 it moves one thread from
// idle to notified and wakes one waiter (a waiter that wakes with
// notified == 0 was woken spuriously or by the deadline and does not take
// the work of another); else if alive < max_workers it starts a thread
// (under mutex_, so the new thread cannot look at its handle before it is
// stored); else the function waits in the queue. No function is ever
// stranded: a thread goes idle only after finding the queue empty under the
// same hold of mutex_, and a push made while no thread is idle is found by a
// thread that is busy or notified, or by the thread started for it.
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

#include <cstdio>
#include <exception>
#include <utility>

namespace weft {
namespace {

// The pool whose thread this is; lets shutdown(true) refuse to wait for itself.
thread_local const ThreadPoolExecutor* current_pool = nullptr;

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
  return options;
}

std::chrono::steady_clock::time_point saturating_deadline(std::chrono::nanoseconds delay) {
  const auto now = std::chrono::steady_clock::now();
  if (delay >= std::chrono::steady_clock::time_point::max() - now)
    return std::chrono::steady_clock::time_point::max();
  return now + delay;
}

}  // namespace

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers)
    : ThreadPoolExecutor(Options{.max_workers = max_workers}) {}

ThreadPoolExecutor::ThreadPoolExecutor(Options options) : options_(validated(std::move(options))) {}

ThreadPoolExecutor::~ThreadPoolExecutor() { shutdown(true); }

void ThreadPoolExecutor::submit(std::function<void()> fn) {
  if (!fn) throw ValueError("ThreadPoolExecutor::submit: empty function");
  std::unique_lock lock(mutex_);
  Synced& s = synced_;
  if (s.shut_down) throw RuntimeError("ThreadPoolExecutor::submit: executor is shut down");
  s.queue.push_back(std::move(fn));
  if (s.idle > 0) {
    --s.idle;
    ++s.notified;
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

void ThreadPoolExecutor::spawn_thread(Synced& s) {
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

void ThreadPoolExecutor::run_thread(Threads::iterator self) {
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
      lock.lock();
      ++s.completed_total;
    }
    if (s.shut_down) break;

    // Idle: until a wake-up is handed to this thread, shutdown, or keep_alive.
    ++s.idle;
    const auto deadline = saturating_deadline(options_.keep_alive);
    bool retire = false;
    for (;;) {
      const bool timed_out = work_cv_.wait_until(lock, deadline) == std::cv_status::timeout;
      if (s.notified > 0) {  // the submitter has already taken us out of `idle`
        --s.notified;
        break;
      }
      if (s.shut_down || timed_out) {
        --s.idle;
        retire = !s.shut_down;
        break;
      }
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

void ThreadPoolExecutor::shutdown(bool wait) {
  if (wait && current_pool == this)
    throw RuntimeError(
        "ThreadPoolExecutor::shutdown: cannot wait on one of the pool's own threads");
  std::unique_lock lock(mutex_);
  Synced& s = synced_;
  if (!s.shut_down) {
    s.shut_down = true;
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

ThreadPoolExecutor::Stats ThreadPoolExecutor::stats() const {
  std::lock_guard lock(mutex_);
  const Synced& s = synced_;
  return Stats{.threads = s.alive,
               .idle = s.idle,
               .busy = s.alive - s.idle,
               .queued = s.queue.size(),
               .spawned_total = s.spawned_total,
               .retired_total = s.retired_total,
               .completed_total = s.completed_total};
}

}  // namespace weft

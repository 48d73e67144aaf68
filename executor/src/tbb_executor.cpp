// TbbExecutor: submitted functions run as tasks enqueued into one oneTBB
// task_arena.
//
// Invariants. `queue`, `pending` and `shut_down` are read and written only
// under `mutex`. submit() checks shut_down, pushes the function, enqueues one
// Drain task into the arena and counts it in `pending`, all under one hold of
// mutex, so there is exactly one Drain per queued function. A Drain pops the
// oldest function under mutex, runs it with mutex released, destroys it (what
// it captured is gone before shutdown(true) can return), then decrements
// pending under mutex and notifies `drained` when it reaches 0.
// Functions and completions pass through this mutex rather than through TBB
// (a captured std::function, a tbb::task_group) for two reasons: the
// happens-before edges are then ones ThreadSanitizer sees (libtbb is not
// instrumented), and a function that throws cannot cancel the others (a
// task_group cancels its remaining tasks when one throws).
//
// Threads. The arena reserves no slot for external threads: nobody calls
// arena.execute(), work is only enqueued, so every slot is for a TBB worker.
// TBB's global worker limit defaults to hardware_concurrency - 1 (it counts
// on a main thread joining in), which would leave such an arena one thread
// short, so the executor raises the limit to max_concurrency + 1 for its
// lifetime, unless the active limit is already that high or a user's
// tbb::global_control has set it lower; see worker_limit.
//
// Shutdown order: shutdown() sets shut_down (submit() throws from then on);
// shutdown(true) then waits for pending == 0. The destructor does the same,
// then terminates the arena (~task_arena) and drops the worker limit.
#include <weft/errors.hpp>
#include <weft/tbb_executor.hpp>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <utility>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace weft {
namespace {

// Tell ThreadSanitizer about the hand-off through TBB's enqueue (libtbb is not
// instrumented): what submit() did before enqueueing happens before the Drain.
#if defined(__SANITIZE_THREAD__)
void tsan_release(void* address) { __tsan_release(address); }
void tsan_acquire(void* address) { __tsan_acquire(address); }
#else
void tsan_release(void*) {}
void tsan_acquire(void*) {}
#endif

int validated_concurrency(int max_concurrency) {
  if (max_concurrency < 0) throw ValueError("TbbExecutor: max_concurrency must not be negative");
  return max_concurrency == 0 ? tbb::this_task_arena::max_concurrency() : max_concurrency;
}

/// A global_control that lets `workers` TBB workers run, or nothing when the
/// active limit already does. global_control takes the minimum of all live
/// instances, so creating one below the active value would lower the limit
/// for the whole process; creating one above it raises the default limit but
/// never overrides a lower one the user has set.
std::optional<tbb::global_control> worker_limit(int workers) {
  const std::size_t needed = static_cast<std::size_t>(workers) + 1;
  const auto parameter = tbb::global_control::max_allowed_parallelism;
  if (tbb::global_control::active_value(parameter) >= needed) return std::nullopt;
  return std::optional<tbb::global_control>(std::in_place, parameter, needed);
}

}  // namespace

struct TbbExecutor::Impl {
  explicit Impl(int max_concurrency)
      : worker_limit(weft::worker_limit(max_concurrency)),
        arena(max_concurrency, /*reserved_for_masters=*/0) {
    arena.initialize();
  }

  // What the arena runs: one per submitted function, each taking the oldest
  // queued function. Its one field is accessed atomically only so that
  // ThreadSanitizer does not flag the copy TBB makes of it and later reuses
  // the memory of (see the TSan note at the end of the file).
  struct Drain {
    explicit Drain(Impl* target) noexcept { std::atomic_ref(impl).store(target, kRelaxed); }
    Drain(const Drain& other) noexcept : Drain(other.target()) {}
    // ordering: relaxed; TBB's enqueue publishes the task to its worker.
    Impl* target() const noexcept { return std::atomic_ref(impl).load(kRelaxed); }
    void operator()() const {
      Impl* const executor = target();
      tsan_acquire(executor);
      executor->run_oldest();
    }
    static constexpr auto kRelaxed = std::memory_order_relaxed;
    mutable Impl* impl;  // through atomic_ref only
  };

  void run_oldest() noexcept;

  // The executor whose function this thread is running, if any; lets
  // shutdown(true) refuse to wait for itself.
  static thread_local const Impl* current;

  std::optional<tbb::global_control> worker_limit;  // declared first: outlives the arena
  tbb::task_arena arena;
  std::mutex mutex;
  std::condition_variable drained;          // notified when pending reaches 0
  std::deque<std::function<void()>> queue;  // guarded by mutex
  std::size_t pending = 0;                  // guarded by mutex: queued + running
  bool shut_down = false;                   // guarded by mutex
};

thread_local const TbbExecutor::Impl* TbbExecutor::Impl::current = nullptr;

void TbbExecutor::Impl::run_oldest() noexcept {
  std::unique_lock lock(mutex);
  std::function<void()> fn = std::move(queue.front());
  queue.pop_front();
  lock.unlock();
  const Impl* const outer = std::exchange(current, this);
  try {
    fn();
  } catch (...) {
    // run_in_executor never gets here: it stores the exception in its future.
    std::fprintf(stderr, "weft::TbbExecutor: a submitted function threw: %s\n",
                 describe_exception(std::current_exception()).c_str());
  }
  fn = nullptr;  // what it captured is destroyed before shutdown(true) can return
  current = outer;
  lock.lock();
  if (--pending == 0) drained.notify_all();
}

TbbExecutor::TbbExecutor(int max_concurrency)
    : impl_(std::make_unique<Impl>(validated_concurrency(max_concurrency))) {}

TbbExecutor::~TbbExecutor() { shutdown(true); }

void TbbExecutor::submit(std::function<void()> fn) {
  if (!fn) throw ValueError("TbbExecutor::submit: empty function");
  // Enqueued under the lock (enqueue never runs the task inline), so that if
  // it throws, the function to take back is the last one queued.
  std::lock_guard lock(impl_->mutex);
  if (impl_->shut_down) throw RuntimeError("TbbExecutor::submit: executor is shut down");
  impl_->queue.push_back(std::move(fn));
  tsan_release(impl_.get());
  try {
    impl_->arena.enqueue(Impl::Drain(impl_.get()));
  } catch (...) {
    impl_->queue.pop_back();
    throw;
  }
  ++impl_->pending;
}

void TbbExecutor::shutdown(bool wait) {
  if (wait && Impl::current == impl_.get())
    throw RuntimeError("TbbExecutor::shutdown: cannot wait inside one of its own functions");
  std::unique_lock lock(impl_->mutex);
  impl_->shut_down = true;
  if (wait) impl_->drained.wait(lock, [&] { return impl_->pending == 0; });
}

int TbbExecutor::max_concurrency() const noexcept { return impl_->arena.max_concurrency(); }

std::size_t TbbExecutor::pending() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->pending;
}

}  // namespace weft

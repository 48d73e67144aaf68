// Runtime: the public face of the Scheduler (scheduler.hpp, scheduler.cpp).
#include <weft/executor.hpp>
#include <weft/runtime.hpp>

#include <condition_variable>
#include <mutex>
#include <string>

#include "scheduler.hpp"

namespace weft {

// --------------------------------------------------------------------- Runtime

Runtime::Runtime(RunOptions options) : scheduler_(std::make_unique<detail::Scheduler>(options)) {}

Runtime::~Runtime() { shutdown(std::chrono::seconds(5)); }

EventLoop* Runtime::spawn_loop() {
  if (scheduler_->stopped.load(std::memory_order_acquire))
    throw RuntimeError("spawn: the runtime is shut down");
  if (detail::Worker* w = detail::current_worker(); w && w->scheduler() == scheduler_.get())
    return &w->loop();
  unsigned i = scheduler_->next_spawn_loop.fetch_add(1, std::memory_order_relaxed) %
               static_cast<unsigned>(scheduler_->workers.size());
  return &scheduler_->workers[i]->loop();
}

EventLoop& Runtime::loop(unsigned index) {
  if (index >= scheduler_->workers.size())
    throw ValueError("Runtime::loop: index " + std::to_string(index) + " out of range (" +
                     std::to_string(scheduler_->workers.size()) + " workers)");
  return scheduler_->workers[index]->loop();
}

unsigned Runtime::workers() const { return static_cast<unsigned>(scheduler_->workers.size()); }

RuntimeMetrics Runtime::metrics() const { return detail::collect_metrics(*scheduler_); }

void Runtime::wait_until_done(detail::FutureBase& future) {
  if (detail::current_worker() || detail::current_loop())
    throw RuntimeError("block_on: called from a thread that runs an event loop (would deadlock)");
  if (future.done()) return;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  future.add_done_callback([&](detail::FutureBase&) {
    std::lock_guard lock(mu);
    done = true;
    cv.notify_one();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
}

void Runtime::shutdown(std::chrono::nanoseconds grace) {
  if (scheduler_->stopped.load(std::memory_order_acquire)) return;
  if (detail::current_worker())
    throw RuntimeError("Runtime::shutdown: called from one of its own workers");
  scheduler_->cancel_all_and_wait(Clock::now() + grace, nullptr);
  scheduler_->shutdown_executors();
  scheduler_->stop_and_join();
  scheduler_->abandon_leftovers();
}

void Runtime::shutdown_after_main() {
  if (scheduler_->stopped.load(std::memory_order_acquire)) return;
  std::vector<TaskRef> cancelled;
  scheduler_->cancel_all_and_wait(TimePoint::max(), &cancelled);
  // RUN-04: an error a leftover task raised while being cancelled is reported.
  for (TaskRef& t : cancelled) {
    detail::TaskCore* core = detail::TaskAccess::core(t);
    detail::FutureBase& f = core->as_future();
    if (f.status() == detail::FutureStatus::exception) {
      std::exception_ptr e = f.exception();
      core->home()->call_exception_handler(
          {"unhandled exception during weft::run() shutdown", e, t, std::nullopt});
    }
  }
  scheduler_->shutdown_executors();
  scheduler_->stop_and_join();
  scheduler_->abandon_leftovers();
}

}  // namespace weft

// The default executor and its place in the runtime (docs/api.md, offloading).
#include <weft/offload.hpp>
#include <weft/thread_pool_executor.hpp>

#include "scheduler.hpp"

namespace weft {

std::shared_ptr<Executor> EventLoop::default_executor() {
  detail::LoopImpl& loop = *impl_;
  {
    std::lock_guard lock(loop.config_mu);
    if (loop.default_executor) return loop.default_executor;
    if (!loop.scheduler) {
      check_open("default_executor");
      loop.default_executor = std::make_shared<ThreadPoolExecutor>();
      return loop.default_executor;
    }
  }
  detail::Scheduler& s = *loop.scheduler;
  std::lock_guard lock(s.executor_mu);
  if (s.stopped.load(std::memory_order_acquire))
    throw RuntimeError("run_in_executor: the runtime is shut down");
  if (!s.default_executor) s.default_executor = std::make_shared<ThreadPoolExecutor>();
  return s.default_executor;
}

namespace detail {

void expect_offload_completion(EventLoop& loop) noexcept {
  LoopImpl& impl = LoopAccess::impl(loop);
  if (impl.on_owner_thread()) impl.expect_remote_wake();
}

void shutdown_executor(Executor& executor) { executor.shutdown(true); }

void blocking_pool_counts(Scheduler& scheduler, std::int64_t& busy, std::int64_t& idle) {
  std::shared_ptr<Executor> executor;
  {
    std::lock_guard lock(scheduler.executor_mu);
    executor = scheduler.default_executor;
  }
  busy = idle = 0;
  if (auto* pool = dynamic_cast<ThreadPoolExecutor*>(executor.get())) {
    auto stats = pool->stats();
    busy = static_cast<std::int64_t>(stats.busy);
    idle = static_cast<std::int64_t>(stats.idle);
  }
}

}  // namespace detail
}  // namespace weft

// detail::running_loops(): the loops of the calling worker's runtime (see runtime.hpp).
#include <weft/errors.hpp>
#include <weft/runtime.hpp>

#include "scheduler.hpp"

namespace weft::detail {

std::vector<EventLoop*> running_loops() {
  std::vector<EventLoop*> loops;
  if (Worker* w = current_worker()) {
    // The workers vector is built before any worker starts and never changes.
    for (const auto& worker : w->scheduler()->workers) loops.push_back(&worker->loop());
    return loops;
  }
  EventLoop* loop = current_loop();
  if (!loop) throw RuntimeError("running_loops: no running event loop on this thread");
  loops.push_back(loop);
  return loops;
}

}  // namespace weft::detail

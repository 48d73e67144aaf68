// asyncio's _wait (see <weft/wait.hpp>).
//
// Invariants: the done callbacks and the timeout timer are registered from the
// awaiting task's loop during one step, so they all run on that loop's thread,
// one at a time: `counter` and `timer` need no lock (the timer handle is
// written before any callback is registered, and only read afterwards).
// The waiter future is completed from that thread and read by the awaiting
// task after completion.
#include <weft/event_loop.hpp>
#include <weft/wait.hpp>

#include <memory>

namespace weft::detail {

namespace {
struct WaitShared {
  std::size_t counter;
  ReturnWhen return_when;
  Future<void> waiter;
  TimerHandle timer;

  void release() {
    if (timer) timer.cancel();
    FutureAccess::state(waiter)->set_value();  // false if already done (timeout, cancel): fine
  }
  void on_completion(FutureBase& f) {
    --counter;
    if (counter == 0 || return_when == ReturnWhen::FIRST_COMPLETED ||
        (return_when == ReturnWhen::FIRST_EXCEPTION && !f.cancelled() && f.exception()))
      release();
  }
};
}  // namespace

Coro<void> wait_states(std::vector<StateRef<FutureBase>> fs, WaitOptions options) {
  auto shared = std::make_shared<WaitShared>();
  shared->counter = fs.size();
  shared->return_when = options.return_when;
  if (options.timeout) {
    StateRef<FutureState<void>> w(FutureAccess::state(shared->waiter));
    shared->timer = get_running_loop().call_later(*options.timeout, [w] { w->set_value(); });
  }
  std::vector<CallbackId> ids;
  ids.reserve(fs.size());
  for (auto& f : fs)
    ids.push_back(
        f->add_done_callback([shared](FutureBase& done) { shared->on_completion(done); }));
  std::exception_ptr error;
  try {
    co_await shared->waiter;
  } catch (...) {
    error = std::current_exception();
  }
  if (shared->timer) shared->timer.cancel();
  for (std::size_t i = 0; i < fs.size(); ++i) fs[i]->remove_done_callback(ids[i]);
  if (error) std::rethrow_exception(error);
}

}  // namespace weft::detail

// Helpers shared by the composition functions (<weft/outcome.hpp>,
// <weft/wait_for.hpp>).
#include <weft/outcome.hpp>
#include <weft/wait_for.hpp>

namespace weft::detail {

std::exception_ptr cancelled_error_of(FutureBase& f) {
  try {
    f.check_result();
  } catch (const CancelledError&) {
    return std::current_exception();
  } catch (...) {
  }
  return std::make_exception_ptr(CancelledError());
}

Coro<void> cancel_and_wait(StateRef<FutureBase> fut) {
  // The waiter is completed by a done callback on this loop; cancelling the
  // caller cancels only the waiter.
  Future<void> waiter;
  StateRef<FutureState<void>> w(FutureAccess::state(waiter));
  CallbackId id = fut->add_done_callback([w](FutureBase&) { w->set_value(); });
  fut->cancel(std::string());
  std::exception_ptr error;
  try {
    co_await waiter;
  } catch (...) {
    error = std::current_exception();
  }
  fut->remove_done_callback(id);
  if (error) std::rethrow_exception(error);
}

}  // namespace weft::detail

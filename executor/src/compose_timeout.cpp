// TimeoutState: asyncio.Timeout's state machine (see <weft/timeout.hpp> for
// the protocol and its invariants).
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/timeout.hpp>

namespace weft::detail {

namespace {
const char* phase_name(TimeoutState::Phase p) {
  switch (p) {
    case TimeoutState::Phase::created:
      return "created";
    case TimeoutState::Phase::active:
      return "active";
    case TimeoutState::Phase::expiring:
      return "expiring";
    case TimeoutState::Phase::expired:
      return "expired";
    case TimeoutState::Phase::finished:
      return "finished";
  }
  return "unknown";
}
}  // namespace

void TimeoutState::enter(std::optional<TimePoint> when) {
  TaskRef task = current_task();
  if (!task) throw RuntimeError("Timeout should be used inside a task");
  std::lock_guard lock(mu_);
  if (phase_ != Phase::created) throw RuntimeError("Timeout has already been entered");
  phase_ = Phase::active;
  task_ = std::move(task);
  cancelling_on_entry_ = task_.cancelling();
  arm_locked(when);
}

void TimeoutState::arm_locked(std::optional<TimePoint> when) {
  when_ = when;
  ++generation_;
  if (handle_) handle_.cancel();
  handle_ = Handle();
  if (!when) return;
  EventLoop& loop = get_running_loop();
  auto cb = [self = shared_from_this(), gen = generation_] { self->on_timeout(gen); };
  // asyncio: a deadline already past is handled at the next iteration (call_soon),
  // behind what is ready now (TMO-03).
  if (*when <= loop.time())
    handle_ = loop.call_soon(std::move(cb));
  else
    handle_ = loop.call_at(*when, std::move(cb));
}

void TimeoutState::on_timeout(std::uint64_t generation) {
  std::lock_guard lock(mu_);
  if (generation != generation_ || phase_ != Phase::active) return;
  phase_ = Phase::expiring;
  handle_ = Handle();
  // Under mu_: exit() cannot uncancel() between our state change and this
  // cancel. If what the task awaits completed before the deadline reached it,
  // the task resumes with that result and the cancellation waits for its next
  // suspension (a result ready when the deadline fires is returned).
  TaskAccess::core(task_)->request_cancel_after_completion(std::string());
}

std::exception_ptr TimeoutState::exit(std::exception_ptr error) {
  bool was_expiring = false;
  {
    std::lock_guard lock(mu_);
    if (handle_) handle_.cancel();
    handle_ = Handle();
    ++generation_;
    if (phase_ == Phase::expiring) {
      phase_ = Phase::expired;
      was_expiring = true;
    } else if (phase_ == Phase::active) {
      phase_ = Phase::finished;
    }
  }
  if (!was_expiring) return error;
  // TMO-04: convert only if no cancellation beyond ours is pending.
  if (task_.uncancel() <= cancelling_on_entry_ && error && is_cancelled_error(error)) {
    try {
      std::rethrow_exception(error);
    } catch (...) {
      try {
        std::throw_with_nested(TimeoutError());
      } catch (...) {
        return std::current_exception();
      }
    }
  }
  return error;
}

std::optional<TimePoint> TimeoutState::when() const {
  std::lock_guard lock(mu_);
  return when_;
}

void TimeoutState::reschedule(std::optional<TimePoint> when) {
  std::lock_guard lock(mu_);
  if (phase_ != Phase::active) {
    if (phase_ == Phase::created) throw RuntimeError("Timeout has not been entered");
    throw RuntimeError(std::string("Cannot change state of ") + phase_name(phase_) + " Timeout");
  }
  arm_locked(when);
}

bool TimeoutState::expired() const {
  std::lock_guard lock(mu_);
  return phase_ == Phase::expiring || phase_ == Phase::expired;
}

}  // namespace weft::detail

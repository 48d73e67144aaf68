// TaskGroupCore: asyncio.TaskGroup's state machine (see <weft/task_group.hpp>
// for the protocol, its invariants and the lock order).
#include <weft/event_loop.hpp>
#include <weft/task_group.hpp>

namespace weft::detail {

TaskGroupCore::TaskGroupCore() : parent_(current_task()) {
  if (!parent_) throw RuntimeError("TaskGroup cannot determine the parent task");
}

void TaskGroupCore::check_open() {
  std::lock_guard lock(mu_);
  if (exiting_ && tasks_.empty()) throw RuntimeError("TaskGroup is finished");
  if (aborting_) throw RuntimeError("TaskGroup is shutting down");
}

void TaskGroupCore::add_created(TaskRef task, FutureBase& state) {
  const char* refused = nullptr;
  {
    std::lock_guard lock(mu_);
    if (exiting_ && tasks_.empty())
      refused = "TaskGroup is finished";
    else if (aborting_)
      refused = "TaskGroup is shutting down";
    else
      add_locked(std::move(task), state);
  }
  if (refused) {
    task.cancel();
    throw RuntimeError(refused);
  }
}

void TaskGroupCore::add_locked(TaskRef task, FutureBase& state) {
  std::uint64_t key = next_key_++;
  tasks_.emplace(key, std::move(task));
  std::weak_ptr<TaskGroupCore> weak = weak_from_this();
  // The core outlives every callback that matters: exit() waits for all tasks.
  state.add_done_callback([weak, key](FutureBase& f) {
    if (auto self = weak.lock()) self->on_task_done(key, f);
  });
}

void TaskGroupCore::abort_locked() {
  aborting_ = true;
  for (auto& [key, task] : tasks_)
    if (!task.done()) task.cancel();
}

void TaskGroupCore::on_task_done(std::uint64_t key, FutureBase& f) {
  std::exception_ptr orphan;  // reported outside the lock
  {
    std::lock_guard lock(mu_);
    tasks_.erase(key);
    if (on_completed_ && tasks_.empty()) FutureAccess::state(*on_completed_)->set_value();
    if (f.cancelled()) return;
    std::exception_ptr e = f.exception();
    if (!e) return;
    errors_.push_back(e);
    if (parent_.done()) {
      orphan = e;
    } else if (!aborting_ && !parent_cancel_requested_) {
      // Cancel the body at its current await; exit() withdraws this request.
      abort_locked();
      parent_cancel_requested_ = true;
      parent_.cancel();
    }
  }
  if (orphan) {
    if (EventLoop* loop = current_loop())
      loop->call_exception_handler(
          {"TaskGroup task errored out but its parent task is already completed", orphan,
           std::nullopt, std::nullopt});
  }
}

Coro<void> TaskGroupCore::exit(std::shared_ptr<TaskGroupCore> self, std::exception_ptr body_error) {
  std::exception_ptr propagate_cancellation;
  const bool body_cancelled = body_error && is_cancelled_error(body_error);
  {
    std::lock_guard lock(self->mu_);
    self->exiting_ = true;
    if (body_cancelled) propagate_cancellation = body_error;
    // The parent is being cancelled, or the body raised: cancel the tasks.
    if (body_error && !self->aborting_) self->abort_locked();
  }
  for (;;) {
    Future<void> completed;
    {
      std::lock_guard lock(self->mu_);
      if (self->tasks_.empty()) break;
      if (!self->on_completed_) self->on_completed_.emplace();
      completed = *self->on_completed_;
    }
    std::exception_ptr cancelled;
    try {
      co_await completed;
    } catch (const CancelledError&) {
      cancelled = std::current_exception();
    }
    std::lock_guard lock(self->mu_);
    if (cancelled && !self->aborting_) {
      // The parent is cancelled from outside while the tasks still run.
      propagate_cancellation = cancelled;
      self->abort_locked();
    }
    self->on_completed_.reset();
  }

  std::vector<std::exception_ptr> errors;
  {
    std::lock_guard lock(self->mu_);
    if (self->parent_cancel_requested_) {
      // TG-11: withdraw our own request; no pending one left: swallow the cancellation.
      if (self->parent_.uncancel() == 0) propagate_cancellation = nullptr;
    }
    errors = self->errors_;
  }
  // Errors take priority over a cancellation (TG-06).
  if (propagate_cancellation && errors.empty()) std::rethrow_exception(propagate_cancellation);
  if (body_error && !body_cancelled) errors.push_back(body_error);
  if (errors.empty()) co_return;
  // TG-11: an outside cancellation stays pending: uncancel and re-cancel keep
  // the count stable and make the parent's next await raise.
  if (self->parent_.cancelling() > 0) {
    self->parent_.uncancel();
    self->parent_.cancel();
  }
  throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors));
}

}  // namespace weft::detail

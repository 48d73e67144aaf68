// FutureBase: see detail/future_state.hpp for the protocol.
#include <weft/detail/future_state.hpp>
#include <weft/detail/task_core.hpp>
#include <weft/event_loop.hpp>

namespace weft::detail {

FutureBase::~FutureBase() {
  // FUT-11: a failure nobody looked at is reported when the last handle goes.
  if (status_.load(std::memory_order_acquire) == FutureStatus::exception &&
      !retrieved_.load(std::memory_order_acquire))
    report_unretrieved(loop_, exception_, is_task_ ? "Task" : "Future");
  // Callbacks still registered on a future that never completed.
  for (WaiterNode* n = head_; n;) {
    WaiterNode* next = n->next;
    if (!n->is_task) delete static_cast<CallbackNode*>(n);
    n = next;
  }
}

bool FutureBase::cancel(std::string message) {
  if (set_cancelled(std::move(message))) return true;
  // FUT-11: cancel() on a failed future counts as looking at its exception.
  if (status() == FutureStatus::exception) retrieved_.store(true, std::memory_order_release);
  return false;
}

std::exception_ptr FutureBase::exception() {
  switch (status()) {
    case FutureStatus::pending:
      throw InvalidStateError("Future::exception: Exception is not set.");
    case FutureStatus::cancelled:
      throw CancelledError(cancel_message_ ? *cancel_message_ : std::string());
    default:
      retrieved_.store(true, std::memory_order_release);
      return exception_;
  }
}

void FutureBase::check_result() {
  switch (status()) {
    case FutureStatus::pending:
      throw InvalidStateError("Future::result: Result is not set.");
    case FutureStatus::cancelled:
      throw CancelledError(cancel_message_ ? *cancel_message_ : std::string());
    case FutureStatus::exception:
      retrieved_.store(true, std::memory_order_release);
      std::rethrow_exception(exception_);
    case FutureStatus::result:
      return;
  }
}

bool FutureBase::set_exception_ptr(std::exception_ptr e) {
  return complete(FutureStatus::exception, [&] { exception_ = std::move(e); });
}

bool FutureBase::set_cancelled(std::string message) {
  return complete(FutureStatus::cancelled, [&] {
    if (!message.empty()) cancel_message_ = std::make_unique<std::string>(std::move(message));
  });
}

void FutureBase::link(WaiterNode* node) noexcept {
  node->next = nullptr;
  if (head_) {
    WaiterNode* last = head_->prev;
    last->next = node;
    node->prev = last;
  } else {
    head_ = node;
  }
  head_->prev = node;
}

void FutureBase::unlink(WaiterNode* node) noexcept {
  if (node == head_) {
    head_ = node->next;
    if (head_) head_->prev = node->prev;
  } else {
    node->prev->next = node->next;
    (node->next ? node->next : head_)->prev = node->prev;
  }
  node->prev = node->next = nullptr;
}

bool FutureBase::add_task_waiter(TaskWaiterNode* node) noexcept {
  node->is_task = true;
  lock_.lock();
  if (status_.load(std::memory_order_relaxed) != FutureStatus::pending) {
    lock_.unlock();
    return false;
  }
  link(node);
  lock_.unlock();
  return true;
}

void FutureBase::remove_waiter(WaiterNode* node) noexcept {
  lock_.lock();
  if (status_.load(std::memory_order_relaxed) == FutureStatus::pending) unlink(node);
  lock_.unlock();
}

CallbackId FutureBase::add_done_callback(std::function<void(FutureBase&)> fn) {
  auto* node = new CallbackNode();
  node->is_task = false;
  node->fn = std::move(fn);
  EventLoop* here = current_loop();
  node->loop = here ? here : loop_;
  lock_.lock();
  CallbackId id = ++next_callback_id_;
  node->id = id;
  if (status_.load(std::memory_order_relaxed) == FutureStatus::pending) {
    link(node);
    lock_.unlock();
    return id;
  }
  lock_.unlock();
  // FUT-08: already done: still queued, never called synchronously.
  node->owner = this;
  add_ref();
  schedule_on_loop(node->loop, node);
  return id;
}

std::size_t FutureBase::remove_done_callback(CallbackId id) {
  CallbackNode* found = nullptr;
  lock_.lock();
  for (WaiterNode* n = head_; n; n = n->next) {
    if (!n->is_task && static_cast<CallbackNode*>(n)->id == id) {
      unlink(n);
      found = static_cast<CallbackNode*>(n);
      break;
    }
  }
  lock_.unlock();
  delete found;
  return found ? 1 : 0;
}

void FutureBase::notify(WaiterNode* node) noexcept {
  while (node) {
    // Read everything first: a woken task may destroy its node at once.
    WaiterNode* next = node->next;
    if (node->is_task) {
      static_cast<TaskWaiterNode*>(node)->task->wake();
    } else {
      auto* cb = static_cast<CallbackNode*>(node);
      cb->owner = this;
      add_ref();
      schedule_on_loop(cb->loop, cb);
    }
    node = next;
  }
}

void CallbackNode::run() {
  try {
    fn(*owner);
  } catch (...) {
    // FUT-09: the error goes to the handler; the other callbacks still run.
    EventLoop* target = loop ? loop : current_loop();
    ExceptionContext ctx{"Exception in done callback", std::current_exception(), std::nullopt,
                         std::nullopt};
    if (target)
      target->call_exception_handler(ctx);
    else
      std::fprintf(stderr, "weft: %s: %s\n", ctx.message.c_str(),
                   describe_exception(ctx.exception).c_str());
  }
  owner->release();
  delete this;
}

}  // namespace weft::detail

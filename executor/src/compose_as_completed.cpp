// AsCompletedCore: asyncio's _AsCompletedIterator (see <weft/as_completed.hpp>
// for the protocol and invariants).
#include <weft/as_completed.hpp>

namespace weft::detail {

std::shared_ptr<AsCompletedCore> AsCompletedCore::start(std::vector<StateRef<FutureBase>> fs,
                                                        std::optional<Duration> timeout) {
  auto core = std::make_shared<AsCompletedCore>();
  std::lock_guard lock(core->mu_);
  core->todo_count_ = fs.size();
  core->left_.store(fs.size(), std::memory_order_release);
  core->todo_ = std::move(fs);
  core->ids_.resize(core->todo_.size());
  // Callbacks never run inline, and they take mu_ (held here) before reading ids_.
  for (std::size_t i = 0; i < core->todo_.size(); ++i) {
    std::weak_ptr<AsCompletedCore> weak = core;
    core->ids_[i] = core->todo_[i]->add_done_callback([weak, i](FutureBase&) {
      if (auto c = weak.lock()) c->on_done(i);
    });
  }
  if (timeout && core->todo_count_ > 0) {
    std::weak_ptr<AsCompletedCore> weak = core;
    core->timer_ = get_running_loop().call_later(*timeout, [weak] {
      if (auto c = weak.lock()) c->on_timeout();
    });
  }
  return core;
}

bool AsCompletedCore::claim() noexcept {
  std::size_t n = left_.load(std::memory_order_acquire);
  // ordering: acq_rel CAS; several copies of the iterator may claim at once.
  while (n > 0 && !left_.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
  }
  return n > 0;
}

void AsCompletedCore::put_locked(StateRef<FutureBase> item) {
  while (!getters_.empty()) {
    Future<StateRef<FutureBase>> g = std::move(getters_.front());
    getters_.pop_front();
    if (g.state_ptr()->set_value(item)) return;  // false: that getter was cancelled
  }
  done_.push_back(std::move(item));
}

void AsCompletedCore::on_done(std::size_t index) {
  std::lock_guard lock(mu_);
  if (timed_out_ || !todo_[index]) return;  // on_timeout() was here first
  StateRef<FutureBase> f = std::move(todo_[index]);
  todo_[index] = StateRef<FutureBase>();
  --todo_count_;
  put_locked(std::move(f));
  if (todo_count_ == 0 && timer_) timer_.cancel();
}

void AsCompletedCore::on_timeout() {
  std::lock_guard lock(mu_);
  if (timed_out_) return;
  timed_out_ = true;
  for (std::size_t i = 0; i < todo_.size(); ++i) {
    if (!todo_[i]) continue;
    todo_[i]->remove_done_callback(ids_[i]);
    todo_[i] = StateRef<FutureBase>();
    put_locked(StateRef<FutureBase>());  // the TimeoutError sentinel
  }
  todo_count_ = 0;
}

Coro<StateRef<FutureBase>> AsCompletedCore::next(std::shared_ptr<AsCompletedCore> self) {
  Future<StateRef<FutureBase>> getter;
  {
    std::lock_guard lock(self->mu_);
    if (!self->done_.empty()) {
      StateRef<FutureBase> item = std::move(self->done_.front());
      self->done_.pop_front();
      co_return item;
    }
    self->getters_.push_back(getter);
  }
  // A finished child handed to this getter is nobody else's: if the awaiting
  // task is cancelled after the handover, the element still returns it.
  co_return co_await FutureAwaiter<StateRef<FutureBase>, true, true>(getter.state_ptr());
}

}  // namespace weft::detail

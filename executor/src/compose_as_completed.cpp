// AsCompletedCore: asyncio's _AsCompletedIterator (see <weft/as_completed.hpp>
// for the protocol and invariants).
#include <weft/as_completed.hpp>

namespace weft::detail {

std::shared_ptr<AsCompletedCore> AsCompletedCore::start(std::vector<StateRef<FutureBase>> fs,
                                                        std::vector<GiveBack> give_backs,
                                                        std::optional<Duration> timeout) {
  auto core = std::make_shared<AsCompletedCore>();
  std::lock_guard lock(core->mu_);
  core->todo_count_ = fs.size();
  core->left_.store(fs.size(), std::memory_order_release);
  core->todo_ = std::move(fs);
  core->give_backs_ = std::move(give_backs);
  core->ids_.resize(core->todo_.size());
  // Callbacks never run inline, and they take mu_ (held here) before reading ids_.
  for (std::size_t i = 0; i < core->todo_.size(); ++i) {
    std::weak_ptr<AsCompletedCore> weak = core;
    GiveBack g = core->give_backs_[i];
    core->ids_[i] = core->todo_[i]->add_done_callback([weak, i, g](FutureBase& f) {
      if (auto c = weak.lock())
        c->on_done(i, f);
      else if (g && f.status() == FutureStatus::result)
        g(f);  // no element can take it any more
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

AsCompletedCore::~AsCompletedCore() {
  // No element took these. Latest first: a queue gets its items back in the
  // order the gets took them.
  for (auto it = done_.rbegin(); it != done_.rend(); ++it)
    if (it->give_back && it->child->status() == FutureStatus::result) it->give_back(*it->child);
}

void AsCompletedCore::put_locked(Finished item) {
  while (!getters_.empty()) {
    Future<StateRef<FutureBase>> g = std::move(getters_.front());
    getters_.pop_front();
    if (FutureAccess::state(g)->set_value(item.child)) return;  // false: that getter was cancelled
  }
  done_.push_back(std::move(item));
}

void AsCompletedCore::on_done(std::size_t index, FutureBase& child) {
  std::lock_guard lock(mu_);
  if (timed_out_ || !todo_[index]) {
    // on_timeout() was here first: no element will return this result.
    if (give_backs_[index] && child.status() == FutureStatus::result) give_backs_[index](child);
    return;
  }
  StateRef<FutureBase> f = std::move(todo_[index]);
  todo_[index] = StateRef<FutureBase>();
  --todo_count_;
  put_locked(Finished{std::move(f), give_backs_[index]});
  if (todo_count_ == 0 && timer_) timer_.cancel();
}

void AsCompletedCore::on_timeout() {
  std::lock_guard lock(mu_);
  if (timed_out_) return;
  timed_out_ = true;
  for (std::size_t i = 0; i < todo_.size(); ++i) {
    if (!todo_[i]) continue;
    // A child that gives back keeps its callback: its result goes back when it comes.
    if (!give_backs_[i]) todo_[i]->remove_done_callback(ids_[i]);
    todo_[i] = StateRef<FutureBase>();
    put_locked(Finished{});  // the TimeoutError sentinel
  }
  todo_count_ = 0;
}

Coro<StateRef<FutureBase>> AsCompletedCore::next(std::shared_ptr<AsCompletedCore> self) {
  Future<StateRef<FutureBase>> getter;
  {
    std::lock_guard lock(self->mu_);
    if (!self->done_.empty()) {
      StateRef<FutureBase> item = std::move(self->done_.front().child);
      self->done_.pop_front();
      co_return item;
    }
    self->getters_.push_back(getter);
  }
  // A finished child handed to this getter is nobody else's: if the awaiting
  // task is cancelled after the handover, the element still returns it.
  co_return co_await FutureAwaiter<StateRef<FutureBase>, true, true>(FutureAccess::state(getter));
}

}  // namespace weft::detail

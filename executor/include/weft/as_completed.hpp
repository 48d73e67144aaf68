// as_completed(): asyncio.as_completed. Iterates over awaitables that yield
// the results in completion order.
//
//   for (auto next : weft::as_completed(std::move(tasks), 1s)) {
//     int v = co_await std::move(next);   // earliest finisher first
//   }
//
// Each element is a Coro<T> that waits for the next child to finish and
// returns its value (or rethrows its exception), whichever child that is
// (ASC-01). Duplicates are de-duplicated; there are as many elements as
// distinct inputs. With a timeout, the elements awaited after it passed for
// children still pending raise TimeoutError; children already complete still
// give their values; a timeout that never triggers has no effect (ASC-02).
// Iteration can stop early and be resumed by iterating the same AsCompleted
// again; several elements may be awaited concurrently (ASC-03). Coro inputs
// are wrapped in tasks.
//
// Nothing taken is lost (detail/give_back.hpp): a child made from an
// awaitable that takes something (`q.get()`, `lock.acquire()`) whose result
// no element will return — it finished after the timeout, or the last
// AsCompleted handle went before an element took it — gives it back: the
// item returns to its queue, the permit is released. asyncio drops it.
//
// as_completed() must be called on a loop thread (RuntimeError otherwise); the
// elements may be awaited from any task. AsCompleted is a cheap copyable
// handle; copies share the iteration.
//
// Implementation (asyncio's _AsCompletedIterator): done callbacks and the
// timeout timer run on the calling loop and push finished children (or a
// timeout sentinel) into a queue; awaiting an element pops one, waiting in
// FIFO order if the queue is empty. Invariant: the queue, the waiting
// getters and the pending set are guarded by mu_ (the callbacks run on the
// loop thread, the getters on any worker); a getter cancelled while waiting
// loses nothing (a completed item goes to the next getter or stays queued).
// A child's done callback holds the core weakly; with a give-back it also
// holds the hook, so a result that arrives after the core died (or after the
// timeout) goes back; the results still queued when the core dies go back in
// its destructor (no callback can run then: each holds the core while it runs).
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/give_back.hpp>
#include <weft/event_loop.hpp>
#include <weft/future.hpp>
#include <weft/outcome.hpp>

#include <atomic>
#include <cstddef>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace weft {
namespace detail {

class AsCompletedCore : public std::enable_shared_from_this<AsCompletedCore> {
 public:
  /// `fs` distinct; `give_backs` parallel to it (empty hooks for children
  /// the caller holds). Registers the callbacks and the timer on the running loop.
  static std::shared_ptr<AsCompletedCore> start(std::vector<StateRef<FutureBase>> fs,
                                                std::vector<GiveBack> give_backs,
                                                std::optional<Duration> timeout);
  AsCompletedCore() = default;
  AsCompletedCore(const AsCompletedCore&) = delete;
  AsCompletedCore& operator=(const AsCompletedCore&) = delete;
  ~AsCompletedCore();
  /// The next finished child; a null ref once the timeout passed.
  static Coro<StateRef<FutureBase>> next(std::shared_ptr<AsCompletedCore> self);
  /// Claims one element; false when every element has been handed out.
  bool claim() noexcept;
  bool exhausted() const noexcept { return left_.load(std::memory_order_acquire) == 0; }

 private:
  struct Finished {
    StateRef<FutureBase> child;  // null: the TimeoutError sentinel
    GiveBack give_back;
  };

  void on_done(std::size_t index, FutureBase& child);
  void on_timeout();
  void put_locked(Finished item);

  std::mutex mu_;
  std::vector<StateRef<FutureBase>> todo_;  // pending children (null once done); under mu_
  std::vector<CallbackId> ids_;             // written before any callback is registered
  std::vector<GiveBack> give_backs_;        // parallel to todo_; written before, then read-only
  std::size_t todo_count_ = 0;              // under mu_
  bool timed_out_ = false;                  // under mu_
  std::deque<Finished> done_;               // under mu_
  std::deque<Future<StateRef<FutureBase>>> getters_;  // under mu_
  TimerHandle timer_;                                 // under mu_
  std::atomic<std::size_t> left_{0};                  // elements not yet handed out
};

template <class T>
Coro<T> as_completed_next(std::shared_ptr<AsCompletedCore> core) {
  StateRef<FutureBase> item = co_await AsCompletedCore::next(std::move(core));
  if (!item) throw TimeoutError();
  auto* s = static_cast<FutureState<T>*>(item.get());
  s->add_ref();
  Future<T> f = FutureAccess::adopt(s);
  co_return future_value(f);
}

}  // namespace detail

/// What as_completed() returns: an input range of Coro<T>.
template <class T>
class AsCompleted {
 public:
  class iterator {
   public:
    using value_type = Coro<T>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(std::shared_ptr<detail::AsCompletedCore> core) : core_(std::move(core)) {}
    /// Hands out the next element (each dereference claims one, as Python's __next__).
    /// @throws RuntimeError past the end.
    Coro<T> operator*() const {
      if (!core_->claim()) throw RuntimeError("as_completed: no more elements");
      return detail::as_completed_next<T>(core_);
    }
    iterator& operator++() { return *this; }
    void operator++(int) {}
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return !it.core_ || it.core_->exhausted();
    }

   private:
    std::shared_ptr<detail::AsCompletedCore> core_;
  };

  explicit AsCompleted(std::shared_ptr<detail::AsCompletedCore> core) : core_(std::move(core)) {}
  iterator begin() const { return iterator(core_); }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::shared_ptr<detail::AsCompletedCore> core_;
};

/// asyncio.as_completed(aws, timeout=). `aws`: Task<T>, Future<T> or Coro<T>.
/// @throws RuntimeError outside a running loop.
template <detail::ComposeAwaitable A>
AsCompleted<detail::awaitable_value_t<A>> as_completed(std::vector<A> aws,
                                                       std::optional<Duration> timeout = {}) {
  using T = detail::awaitable_value_t<A>;
  if (!detail::current_loop())
    throw RuntimeError("as_completed: no running event loop on this thread");
  std::vector<detail::StateRef<detail::FutureBase>> states;
  std::vector<detail::GiveBack> give_backs;
  states.reserve(aws.size());
  give_backs.reserve(aws.size());
  for (auto& a : aws) {
    detail::GiveBack g = detail::give_back_of(a);
    Future<T> f = detail::to_future(std::move(a));
    bool seen = false;
    for (const auto& s : states) seen = seen || s.get() == detail::FutureAccess::state(f);
    if (!seen) {
      states.emplace_back(detail::FutureAccess::state(f));
      give_backs.push_back(g);
    }
  }
  return AsCompleted<T>(
      detail::AsCompletedCore::start(std::move(states), std::move(give_backs), timeout));
}

}  // namespace weft

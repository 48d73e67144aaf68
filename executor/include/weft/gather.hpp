// gather() and gather_settled(): asyncio.gather, without and with
// return_exceptions=True.
//
//   auto [a, b] = co_await weft::gather(task_a(), task_b());      // argument order
//   std::vector<int> v = co_await weft::gather(std::move(tasks));
//   auto [x, y] = co_await weft::gather_settled(f(), g());        // Outcome<T> each
//
// Arguments may mix Coro<T>, Task<T> and Future<T>; Coros become tasks in
// argument order (GATH-02), so their first steps run in that order. Results
// follow argument order whatever the completion order (GATH-01); void results
// become std::monostate. The same Task or Future given twice is awaited once
// and its result repeated at each position.
//
// gather: the first child exception is raised at once and the other children
// keep running; their later outcomes are ignored (GATH-03). A cancelled child
// makes gather raise CancelledError although the awaiting task itself was not
// cancelled (GATH-05). gather_settled completes when every child is done, a
// cancelled child giving an Outcome whose error() is a CancelledError (GATH-04,
// GATH-06). Cancelling the task awaiting either one cancels every pending
// child and then raises CancelledError with the cancel message (GATH-07).
//
// Nothing taken is lost (detail/give_back.hpp): a child made from an
// awaitable that takes something (`q.get()`, `lock.acquire()`) and that
// completes with a result gather will not deliver (gather raised first, or
// was cancelled) gives it back: the item returns to its queue, the permit is
// released. asyncio drops such a result. Children given as Tasks or Futures
// keep theirs in the handle the caller holds.
//
// Must be awaited inside a task (RuntimeError otherwise); a Coro argument is
// turned into a task when the gather is awaited. Every member of the children
// may complete on any thread.
//
// Implementation (asyncio's _GatheringFuture): the result is an "outer" future
// whose cancel() cancels the children instead of completing it. Invariants:
// - the children and their de-duplicated list are written once, before any
//   done callback is registered, and only read afterwards;
// - every done callback is registered from the awaiting task's loop during one
//   step, so all of them run on that loop's thread, one at a time: nfinished_
//   needs no synchronisation;
// - cancel() may run on any thread (Task::cancel of the awaiter): it only
//   cancels children (thread-safe) and sets cancel_requested_ (atomic);
// - the outer is completed only by those callbacks; the awaiting task reads
//   it after completion (FutureBase's release/acquire status edge);
// - the outer completes with a value only once every child is done, so a
//   callback that finds the outer done found it failed: its child's result is
//   given back (give_backs_ is touched by the callbacks only).
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/give_back.hpp>
#include <weft/future.hpp>
#include <weft/outcome.hpp>
#include <weft/task.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <exception>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace weft {
namespace detail {

template <class Result, class Children>
class GatheringFuture final : public FutureState<Result> {
 public:
  using Assemble = Result (*)(const Children&);

  GatheringFuture(Children children, std::vector<FutureBase*> unique,
                  std::vector<ChildGiveBack> give_backs, bool settled, Assemble assemble)
      : FutureState<Result>(current_loop()),
        children_(std::move(children)),
        unique_(std::move(unique)),
        settled_(settled),
        assemble_(assemble) {
    if (give_backs.empty()) return;
    // Index the hooks by position in unique_, so that a callback finds its own.
    std::sort(give_backs.begin(), give_backs.end(),
              [](const ChildGiveBack& a, const ChildGiveBack& b) { return a.child < b.child; });
    give_backs_.resize(unique_.size());
    for (std::size_t i = 0; i < unique_.size(); ++i) {
      auto it = std::lower_bound(
          give_backs.begin(), give_backs.end(), unique_[i],
          [](const ChildGiveBack& g, FutureBase* child) { return g.child < child; });
      if (it != give_backs.end() && it->child == unique_[i]) give_backs_[i] = *it;
    }
  }

  /// Registers the done callbacks (on the calling thread's loop).
  void start() {
    for (std::size_t i = 0; i < unique_.size(); ++i) {
      StateRef<GatheringFuture> self(this);
      unique_[i]->add_done_callback([self, i](FutureBase& f) { self->on_child_done(f, i); });
    }
  }

  /// GATH-07: cancelling the gather cancels every pending child; the outer
  /// completes (with CancelledError) once the children report back. False if
  /// no child could be cancelled (all done): the awaiting task then gets its
  /// CancelledError at its next await instead (GATH-08).
  bool cancel(std::string message) override {
    if (this->done()) return false;
    // ordering: acq_rel; read by the last done callback (acquire). Set before the
    // children are cancelled so that a child finishing at once already sees it.
    bool prior = cancel_requested_.exchange(true, std::memory_order_acq_rel);
    bool any = false;
    for (FutureBase* child : unique_)
      if (child->cancel(message)) any = true;
    if (!any && !prior) cancel_requested_.store(false, std::memory_order_release);
    return any;
  }

 private:
  // Runs on the registering loop's thread only (see the file comment).
  void on_child_done(FutureBase& f, std::size_t index) {
    ++nfinished_;
    if (this->done()) {
      // gather failed already. Mark a late failure as retrieved (gather
      // reported its outcome); a late result nobody will see goes back.
      if (!f.cancelled()) (void)f.exception();
      if (!give_backs_.empty()) give_backs_[index].give_back_if_result();
      return;
    }
    if (!settled_) {
      if (f.cancelled()) {
        fail(cancelled_error_of(f));  // GATH-05
        return;
      }
      if (std::exception_ptr e = f.exception()) {
        fail(std::move(e));  // GATH-03
        return;
      }
    }
    if (nfinished_ < unique_.size()) return;
    if (cancel_requested_.load(std::memory_order_acquire)) {
      // GATH-07: a cancelled gather raises CancelledError whatever settled_ is.
      std::exception_ptr e;
      for (FutureBase* child : unique_)
        if (child->cancelled()) e = cancelled_error_of(*child);
      fail(e ? e : std::make_exception_ptr(CancelledError()));
      return;
    }
    try {
      this->set_value(assemble_(children_));
    } catch (...) {
      // assemble_ may have moved some results out already: nothing to give back.
      this->set_exception_ptr(std::current_exception());
    }
  }

  /// Completes the outer with `e`; the results of the children done so far
  /// will not be delivered, so they go back (the others when they finish).
  void fail(std::exception_ptr e) {
    this->set_exception_ptr(std::move(e));
    give_back_results();
  }

  void give_back_results() noexcept {
    for (ChildGiveBack& g : give_backs_) g.give_back_if_result();
  }

  Children children_;
  std::vector<FutureBase*> unique_;  // distinct children; references held by children_
  // Parallel to unique_ (empty when no child gives back): the hook of each
  // child gather made from an awaitable that gives back, else an empty one.
  std::vector<ChildGiveBack> give_backs_;
  std::size_t nfinished_ = 0;
  std::atomic<bool> cancel_requested_{false};
  bool settled_;
  Assemble assemble_;
};

inline void add_unique(std::vector<FutureBase*>& unique, FutureBase* f) {
  for (FutureBase* u : unique)
    if (u == f) return;
  unique.push_back(f);
}

/// Creates the outer future, registers the callbacks and awaits it. Afterwards
/// the outer's exception counts as retrieved even when the awaiter itself was
/// cancelled first (its CancelledError then replaces the outer's outcome).
template <class Result, class Children>
Coro<Result> run_gather(Children children, std::vector<FutureBase*> unique,
                        std::vector<ChildGiveBack> give_backs, bool settled,
                        typename GatheringFuture<Result, Children>::Assemble assemble) {
  auto* state = new GatheringFuture<Result, Children>(std::move(children), std::move(unique),
                                                      std::move(give_backs), settled, assemble);
  Future<Result> outer = FutureAccess::adopt<Result>(state);
  state->start();
  std::exception_ptr error;
  try {
    // The results are nobody else's: a cancellation that arrives after the
    // outer completed is left for the next suspension (see task_core.hpp).
    co_return co_await FutureAwaiter<Result, true, true>(state);
  } catch (...) {
    error = std::current_exception();
  }
  if (outer.done() && !outer.cancelled()) (void)outer.exception();
  std::rethrow_exception(error);
}

template <class... T>
std::vector<FutureBase*> unique_of(const std::tuple<Future<T>...>& children) {
  std::vector<FutureBase*> unique;
  std::apply([&](const auto&... f) { (add_unique(unique, detail::FutureAccess::state(f)), ...); },
             children);
  return unique;
}

template <class T>
std::vector<FutureBase*> unique_of(const std::vector<Future<T>>& children) {
  std::vector<FutureBase*> unique;
  unique.reserve(children.size());
  if (children.size() <= 16) {
    for (const auto& f : children) add_unique(unique, detail::FutureAccess::state(f));
  } else {
    std::vector<FutureBase*> seen;
    seen.reserve(children.size());
    for (const auto& f : children) seen.push_back(detail::FutureAccess::state(f));
    std::vector<FutureBase*> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end()) return seen;
    for (FutureBase* f : seen) add_unique(unique, f);  // rare: duplicates in a large input
  }
  return unique;
}

template <class... T>
std::tuple<value_or_monostate<T>...> gather_values(const std::tuple<Future<T>...>& children) {
  return std::apply(
      [](const auto&... f) {
        return std::tuple<value_or_monostate<T>...>{future_value_or_monostate(f)...};
      },
      children);
}

template <class... T>
std::tuple<Outcome<T>...> gather_outcomes(const std::tuple<Future<T>...>& children) {
  return std::apply([](const auto&... f) { return std::tuple<Outcome<T>...>{outcome_of(f)...}; },
                    children);
}

template <class T>
std::vector<value_or_monostate<T>> gather_values(const std::vector<Future<T>>& children) {
  std::vector<value_or_monostate<T>> out;
  out.reserve(children.size());
  for (const auto& f : children) out.push_back(future_value_or_monostate(f));
  return out;
}

template <class T>
std::vector<Outcome<T>> gather_outcomes(const std::vector<Future<T>>& children) {
  std::vector<Outcome<T>> out;
  out.reserve(children.size());
  for (const auto& f : children) out.push_back(outcome_of(f));
  return out;
}

template <class A>
std::vector<Future<awaitable_value_t<A>>> to_futures(std::vector<A>&& items,
                                                     std::vector<ChildGiveBack>& give_backs) {
  std::vector<Future<awaitable_value_t<A>>> out;
  out.reserve(items.size());
  for (auto& a : items) {
    GiveBack g = give_back_of(a);
    out.push_back(to_future(std::move(a)));  // in input order (GATH-02)
    if (g) give_backs.push_back({detail::FutureAccess::state(out.back()), g});
  }
  return out;
}

/// The children made from awaitables that give back, paired with their hooks.
template <class... T>
std::vector<ChildGiveBack> give_backs_of(const std::tuple<Future<T>...>& children,
                                         const std::array<GiveBack, sizeof...(T)>& hooks) {
  std::vector<ChildGiveBack> out;
  std::size_t i = 0;
  std::apply(
      [&](const auto&... f) {
        ((hooks[i] ? out.push_back({detail::FutureAccess::state(f), hooks[i]}) : void(), ++i), ...);
      },
      children);
  return out;
}

}  // namespace detail

/// asyncio.gather(*aws): the values in argument order.
/// @throws the first child exception; CancelledError if a child was cancelled
///         or the awaiting task was; RuntimeError outside a task.
template <detail::ComposeAwaitable... Aw>
Coro<std::tuple<detail::value_or_monostate<detail::awaitable_value_t<Aw>>...>> gather(Aw... aws) {
  using Result = std::tuple<detail::value_or_monostate<detail::awaitable_value_t<Aw>>...>;
  if constexpr (sizeof...(Aw) == 0) {
    co_return Result{};  // GATH-09
  } else {
    using Children = std::tuple<Future<detail::awaitable_value_t<Aw>>...>;
    // Braced initialisation evaluates left to right: tasks start in argument order.
    std::array<detail::GiveBack, sizeof...(Aw)> hooks{detail::give_back_of(aws)...};
    Children children{detail::to_future(std::move(aws))...};
    std::vector<detail::FutureBase*> unique = detail::unique_of(children);
    std::vector<detail::ChildGiveBack> give_backs = detail::give_backs_of(children, hooks);
    co_return co_await detail::run_gather<Result>(
        std::move(children), std::move(unique), std::move(give_backs), false,
        &detail::gather_values<detail::awaitable_value_t<Aw>...>);
  }
}

/// asyncio.gather(*aws) over a vector of Task<T>, Future<T> or Coro<T>.
template <detail::ComposeAwaitable A>
Coro<std::vector<detail::value_or_monostate<detail::awaitable_value_t<A>>>> gather(
    std::vector<A> aws) {
  using T = detail::awaitable_value_t<A>;
  using Result = std::vector<detail::value_or_monostate<T>>;
  if (aws.empty()) co_return Result{};  // GATH-09
  std::vector<detail::ChildGiveBack> give_backs;
  std::vector<Future<T>> children = detail::to_futures(std::move(aws), give_backs);
  std::vector<detail::FutureBase*> unique = detail::unique_of(children);
  co_return co_await detail::run_gather<Result>(std::move(children), std::move(unique),
                                                std::move(give_backs), false,
                                                &detail::gather_values<T>);
}

/// asyncio.gather(*aws, return_exceptions=True): one Outcome per argument.
/// @throws CancelledError if the awaiting task was cancelled; RuntimeError outside a task.
template <detail::ComposeAwaitable... Aw>
Coro<std::tuple<Outcome<detail::awaitable_value_t<Aw>>...>> gather_settled(Aw... aws) {
  using Result = std::tuple<Outcome<detail::awaitable_value_t<Aw>>...>;
  if constexpr (sizeof...(Aw) == 0) {
    co_return Result{};
  } else {
    using Children = std::tuple<Future<detail::awaitable_value_t<Aw>>...>;
    std::array<detail::GiveBack, sizeof...(Aw)> hooks{detail::give_back_of(aws)...};
    Children children{detail::to_future(std::move(aws))...};
    std::vector<detail::FutureBase*> unique = detail::unique_of(children);
    std::vector<detail::ChildGiveBack> give_backs = detail::give_backs_of(children, hooks);
    co_return co_await detail::run_gather<Result>(
        std::move(children), std::move(unique), std::move(give_backs), true,
        &detail::gather_outcomes<detail::awaitable_value_t<Aw>...>);
  }
}

/// gather_settled over a vector of Task<T>, Future<T> or Coro<T>.
template <detail::ComposeAwaitable A>
Coro<std::vector<Outcome<detail::awaitable_value_t<A>>>> gather_settled(std::vector<A> aws) {
  using T = detail::awaitable_value_t<A>;
  using Result = std::vector<Outcome<T>>;
  if (aws.empty()) co_return Result{};
  std::vector<detail::ChildGiveBack> give_backs;
  std::vector<Future<T>> children = detail::to_futures(std::move(aws), give_backs);
  std::vector<detail::FutureBase*> unique = detail::unique_of(children);
  co_return co_await detail::run_gather<Result>(std::move(children), std::move(unique),
                                                std::move(give_backs), true,
                                                &detail::gather_outcomes<T>);
}

}  // namespace weft

// Outcome<T>: a value or an exception (what gather_settled returns per child,
// asyncio's gather(return_exceptions=True)), and the awaitable adapters that
// every composition function (gather, wait, wait_for, shield, as_completed,
// task_group) shares.
//
// The composition functions accept any mix of Coro<T>, Task<T>, Future<T> and
// any other awaitable, weft's (q.get(), lock.acquire(), sleep()) or a user's
// ("composable awaitables"). gather, shield and as_completed wrap a Coro or
// other awaitable in a task on the running loop first (asyncio's
// ensure_future), so it runs concurrently; a Task or Future is used as it is.
// wait_for and timeout_at run a Coro or awaitable inline in the awaiting task,
// as asyncio 3.12 does. Results are copied out of a child's shared state when T is
// copyable (other handles to that child keep their value) and moved otherwise.
#pragma once

#include <weft/coro.hpp>
#include <weft/future.hpp>
#include <weft/task.hpp>

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace weft {

/// Either a value or an exception. For a cancelled child, error() holds a
/// CancelledError carrying the cancel message (GATH-06).
template <class T>
class Outcome {
 public:
  static Outcome success(T value) { return Outcome(std::move(value), nullptr); }
  /// @throws ValueError for a null exception_ptr.
  static Outcome failure(std::exception_ptr error) {
    if (!error) throw ValueError("Outcome::failure: null exception_ptr");
    return Outcome(std::nullopt, std::move(error));
  }

  bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return has_value(); }
  /// The value. @throws the stored exception if there is one.
  T& value() & {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  const T& value() const& {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  T&& value() && {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }
  /// The stored exception; null when there is a value.
  const std::exception_ptr& error() const noexcept { return error_; }

 private:
  Outcome(std::optional<T> value, std::exception_ptr error)
      : value_(std::move(value)), error_(std::move(error)) {}
  std::optional<T> value_;
  std::exception_ptr error_;
};

template <>
class Outcome<void> {
 public:
  static Outcome success() { return Outcome(nullptr); }
  /// @throws ValueError for a null exception_ptr.
  static Outcome failure(std::exception_ptr error) {
    if (!error) throw ValueError("Outcome::failure: null exception_ptr");
    return Outcome(std::move(error));
  }
  bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return has_value(); }
  /// @throws the stored exception if there is one.
  void value() const {
    if (error_) std::rethrow_exception(error_);
  }
  const std::exception_ptr& error() const noexcept { return error_; }

 private:
  explicit Outcome(std::exception_ptr error) : error_(std::move(error)) {}
  std::exception_ptr error_;
};

namespace detail {

template <class A, class = void>
struct ComposeTraits : std::false_type {};
template <class T>
struct ComposeTraits<Coro<T>> : std::true_type {
  using value_type = T;
};
template <class T>
struct ComposeTraits<Future<T>> : std::true_type {
  using value_type = T;
};
template <class T>
struct ComposeTraits<Task<T>> : std::true_type {
  using value_type = T;
};
/// Any other awaitable: the queue, lock and sleep awaitables, a user's own.
template <class A>
struct ComposeTraits<A,
                     std::enable_if_t<!is_coro<A>::value && !is_future_handle_v<A> && Awaitable<A>>>
    : std::true_type {
  using value_type = await_value_t<A>;
};

/// Anything the composition functions accept: Coro<T>, Task<T>, Future<T> or
/// any other awaitable (a temporary like `q.get()` or `lock.acquire()`).
template <class A>
concept ComposeAwaitable = ComposeTraits<std::remove_cvref_t<A>>::value;

/// What awaiting an A yields (T of a Coro<T> / Task<T> / Future<T>).
template <class A>
using awaitable_value_t = typename ComposeTraits<std::remove_cvref_t<A>>::value_type;

/// void becomes std::monostate (a tuple or vector element cannot be void).
template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// A counted reference to a future's shared state (an intrusive pointer).
/// Copyable, so it can be captured by the std::function done callbacks.
template <class S>
class StateRef {
 public:
  StateRef() noexcept = default;
  /// Adds a reference to `s` (may be null).
  explicit StateRef(S* s) noexcept : s_(s) {
    if (s_) s_->add_ref();
  }
  StateRef(const StateRef& o) noexcept : StateRef(o.s_) {}
  StateRef(StateRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StateRef& operator=(StateRef o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~StateRef() {
    if (s_) s_->release();
  }
  S* get() const noexcept { return s_; }
  S* operator->() const noexcept { return s_; }
  S& operator*() const noexcept { return *s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  S* s_ = nullptr;
};

/// asyncio's ensure_future: a Coro becomes a task on the running loop
/// (@throws RuntimeError outside a loop); a Task or Future is returned as is.
template <class T>
Future<T> to_future(Coro<T>&& coro) {
  return weft::create_task(std::move(coro));
}
template <class T>
Future<T> to_future(const Future<T>& future) {
  if (!future.valid())
    throw InvalidStateError("use of an empty (moved-from) Future or Task handle");
  return future;
}
/// Any other awaitable runs as a task of its own (asyncio wraps the coroutine
/// that q.get() returns the same way).
template <class A>
requires(!is_future_handle_v<A> && !is_coro<std::remove_cvref_t<A>>::value)
    Future<awaitable_value_t<A>> to_future(A&& awaitable) {
  return weft::create_task(as_coro(std::forward<A>(awaitable)));
}

/// The value of a done future: copied when T is copyable, else moved out.
/// @throws what result() throws (the stored exception, CancelledError).
template <class T>
T future_value(const Future<T>& f) {
  FutureState<T>* s = detail::FutureAccess::state(f);
  s->check_result();
  if constexpr (std::is_void_v<T>)
    return;
  else if constexpr (std::is_copy_constructible_v<T>)
    return s->value_ref();
  else
    return std::move(s->value_ref());
}

template <class T>
value_or_monostate<T> future_value_or_monostate(const Future<T>& f) {
  if constexpr (std::is_void_v<T>) {
    future_value(f);
    return {};
  } else {
    return future_value(f);
  }
}

/// The CancelledError (with the cancel message) of a cancelled future.
std::exception_ptr cancelled_error_of(FutureBase& f);

/// The outcome of a done future; a cancelled one gives a CancelledError.
template <class T>
Outcome<T> outcome_of(const Future<T>& f) {
  FutureBase& s = *detail::FutureAccess::state(f);
  if (s.cancelled()) return Outcome<T>::failure(cancelled_error_of(s));
  if (std::exception_ptr e = s.exception()) return Outcome<T>::failure(std::move(e));
  if constexpr (std::is_void_v<T>)
    return Outcome<T>::success();
  else
    return Outcome<T>::success(future_value(f));
}

/// Awaits `f` and returns its value (copied when copyable, else moved).
template <class T>
Coro<T> await_value(Future<T> f) {
  if constexpr (std::is_void_v<T> || std::is_copy_constructible_v<T>)
    co_return co_await f;
  else
    co_return co_await std::move(f);
}

}  // namespace detail
}  // namespace weft

// Coro<T>: what an async function returns (asyncio's coroutine object).
//
// A Coro is lazy: calling `Coro<int> f()` runs nothing. `co_await f()` runs it
// inline in the awaiting task by symmetric transfer (no scheduling) and yields
// its value or rethrows its exception. Move-only; awaiting it twice, or
// awaiting a moved-from Coro, throws RuntimeError. Destroying a Coro that was
// never awaited destroys its frame (in debug mode it logs "coroutine ... was
// never awaited").
//
// Inside a Coro, `co_await` accepts weft's awaitables (Coro, Future, Task and
// the composition helpers) and any standard C++ awaitable. A foreign awaitable
// may resume on any thread; weft bridges it so that the task itself is always
// resumed by a worker, never inline on the foreign thread.
#pragma once

#include <weft/detail/await_record.hpp>
#include <weft/detail/frame_allocator.hpp>
#include <weft/detail/task_core.hpp>
#include <weft/errors.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <source_location>
#include <type_traits>
#include <utility>
#include <variant>

namespace weft {

template <class T = void>
class Coro;

namespace detail {

/// weft's own awaitables declare `using weft_native_awaitable = void;` and are
/// awaited as they are; anything else goes through ForeignAwaiter.
template <class A>
concept NativeAwaitable = requires {
  typename std::remove_cvref_t<A>::weft_native_awaitable;
};

template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); })
    return std::forward<A>(a).operator co_await();
  else if constexpr (requires { operator co_await(std::forward<A>(a)); })
    return operator co_await(std::forward<A>(a));
  else
    return std::forward<A>(a);
}

bool debug_enabled() noexcept;
void log_never_awaited(const char* function_name);

/// A detached coroutine that awaits a foreign awaitable and wakes the task.
struct BridgeCoroutine {
  struct promise_type : FrameAllocated {
    BridgeCoroutine get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

template <class A>
class ForeignAwaiter {
  using Awaiter = decltype(get_awaiter(std::declval<A>()));
  using AwaiterObject = std::remove_reference_t<Awaiter>;
  using Result = decltype(std::declval<AwaiterObject&>().await_resume());
  using Stored = std::conditional_t<
      std::is_void_v<Result>, std::monostate,
      std::conditional_t<std::is_reference_v<Result>, std::remove_reference_t<Result>*, Result>>;
  // The awaitable is its own awaiter (a reference into awaitable_), or
  // operator co_await made one, kept here next to it.
  using AwaiterSlot = std::conditional_t<std::is_reference_v<Awaiter>, AwaiterObject*,
                                         std::optional<AwaiterObject>>;

 public:
  explicit ForeignAwaiter(A&& a) : awaitable_(std::forward<A>(a)) {}
  bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    task_ = &require_task("co_await on a foreign awaitable");
    if constexpr (std::is_reference_v<Awaiter>) {
      auto&& awaiter = get_awaiter(std::forward<A>(awaitable_));
      awaiter_ = &awaiter;
    } else
      awaiter_.emplace(get_awaiter(std::forward<A>(awaitable_)));
    suspend_at(*task_, h, *this);
    task_->begin_wait(nullptr);
    bridge(this);
  }
  /// AwaitKind::other, unless the awaitable describes itself.
  void weft_describe_await(AwaitTarget& out) const noexcept {
    describe_await<std::remove_cvref_t<A>>(std::addressof(awaitable_), out);
  }
  Result await_resume() {
    // A foreign awaitable cannot be cancelled: the task waits until it
    // completes. Its outcome is delivered, and a cancellation requested
    // meanwhile reaches the task's next suspension (nothing it produced is
    // discarded).
    task_->end_wait_keeping_cancel();
    if (error_) std::rethrow_exception(error_);
    if constexpr (std::is_void_v<Result>)
      return;
    else if constexpr (std::is_reference_v<Result>)
      return static_cast<Result>(**result_);
    else
      return std::move(*result_);
  }

 private:
  /// What the bridge awaits: forwards to the foreign awaiter, which stays in
  /// *self, and stores its result there. Awaiting the awaiter itself made
  /// GCC 12 copy it into the bridge frame: an lvalue foreign awaitable that is
  /// not copyable did not compile, and the copy was destroyed after the
  /// wake-up below. Relay is trivially destructible and its co_await has type
  /// void, so the bridge frame owns nothing that outlives the wake-up. (GCC 12
  /// also destroys an *aggregate* prvalue co_await operand twice, which is
  /// harmless here and a compiler bug for user awaitables; see tests/coro_conformance_test.cpp.)
  struct Relay {
    ForeignAwaiter* self;
    AwaiterObject& awaiter() const noexcept { return *self->awaiter_; }
    bool await_ready() { return awaiter().await_ready(); }
    decltype(auto) await_suspend(std::coroutine_handle<> h) { return awaiter().await_suspend(h); }
    void await_resume() {
      if constexpr (std::is_void_v<Result>)
        awaiter().await_resume();
      else if constexpr (std::is_reference_v<Result>)
        self->result_.emplace(&awaiter().await_resume());
      else
        self->result_.emplace(awaiter().await_resume());
    }
  };

  static BridgeCoroutine bridge(ForeignAwaiter* self) {
    try {
      co_await Relay{self};
    } catch (...) {
      self->error_ = std::current_exception();
    }
    // The task may resume (and destroy *self) as soon as it is woken: nothing
    // of *self is touched after this line, and the frame holds nothing to destroy.
    TaskCore* task = self->task_;
    task->wake();
  }

  A awaitable_;
  AwaiterSlot awaiter_{};
  TaskCore* task_ = nullptr;
  std::optional<Stored> result_;
  std::exception_ptr error_;
};

class CoroPromiseBase : public AwaitRecord {
 public:
  /// started_: not yet, or by whom (the call-graph reader follows
  /// continuation_ only into a frame that is a Coro's, await_record.hpp).
  enum Start : std::uint8_t { kNotStarted, kStartedByTask, kAwaitedByCoro, kAwaitedByOther };

  explicit CoroPromiseBase(const char* function) noexcept : function_(function) {}

  // With room for a task state in front (frame_allocator.hpp).
  static void* operator new(std::size_t size) { return coro_frame_allocate(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    coro_frame_deallocate(frame, size);
  }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      std::coroutine_handle<> next = h.promise().continuation_;
      if (next) return next;
      TaskCore::root_returned();
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }

  // `where` defaults to the co_await expression's location (the caller's).
  // The await record's one store (await_record.hpp).
  template <class A>
  decltype(auto) await_transform(A&& a,
                                 std::source_location where = std::source_location::current()) {
    where_ = where;
    if constexpr (NativeAwaitable<A>)
      return std::forward<A>(a);
    else
      return ForeignAwaiter<A>(std::forward<A>(a));
  }

  const char* function_name() const noexcept { return function_; }
  /// The Coro frame that awaits this one, if it is a Coro's and has not
  /// resumed since (call_graph.cpp, with the task's workers paused).
  const CoroPromiseBase* awaiting_coro() const noexcept {
    if (started_ != kAwaitedByCoro || !continuation_) return nullptr;
    return &std::coroutine_handle<CoroPromiseBase>::from_address(continuation_.address()).promise();
  }
  std::coroutine_handle<> continuation_;
  Start started_ = kNotStarted;
  /// A task's root frame, where its runtime records it: when the task was
  /// created, in milliseconds of the steady clock modulo 2^32 (an age is the
  /// difference, right for 49 days). Fits the padding after started_.
  std::uint32_t born_ms_ = 0;
  std::exception_ptr exception_;

 private:
  const char* function_;
};

template <class T>
class CoroPromise : public CoroPromiseBase {
 public:
  using CoroPromiseBase::CoroPromiseBase;
  template <class U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) { value_.emplace(std::forward<U>(v)); }
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }
  T take() {
    if (exception_) std::rethrow_exception(exception_);
    return std::move(*value_);
  }
  std::optional<T> value_;
};

template <>
class CoroPromise<void> : public CoroPromiseBase {
 public:
  using CoroPromiseBase::CoroPromiseBase;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }
  void take() {
    if (exception_) std::rethrow_exception(exception_);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Coro {
 public:
  using weft_native_awaitable = void;
  using value_type = T;

  struct promise_type : detail::CoroPromise<T> {
    // The default argument is evaluated inside the coroutine, so it names the
    // async function (used by the never-awaited warning).
    promise_type(std::source_location where = std::source_location::current()) noexcept
        : detail::CoroPromise<T>(where.function_name()) {}
    Coro get_return_object() noexcept {
      return Coro(std::coroutine_handle<promise_type>::from_promise(*this));
    }
  };
  using handle_type = std::coroutine_handle<promise_type>;

  Coro() noexcept = default;
  Coro(Coro&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Coro& operator=(Coro&& other) noexcept {
    if (this != &other) {
      destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Coro(const Coro&) = delete;
  Coro& operator=(const Coro&) = delete;
  ~Coro() { destroy(); }

  /// False for a moved-from Coro.
  bool valid() const noexcept { return static_cast<bool>(h_); }
  explicit operator bool() const noexcept { return valid(); }

  /// Hands the frame over (to a task). @throws RuntimeError if invalid or already awaited.
  handle_type release() {
    check_awaitable();
    h_.promise().started_ = detail::CoroPromiseBase::kStartedByTask;
    return std::exchange(h_, {});
  }

  /// Runs the coroutine inline (symmetric transfer). The frame stays owned by
  /// the Coro, which may be an lvalue (`co_await next;`) or an rvalue.
  class Awaiter {
   public:
    explicit Awaiter(handle_type h) noexcept : h_(h) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
      h_.promise().started_ = detail::walkable_promise_v<P>
                                  ? detail::CoroPromiseBase::kAwaitedByCoro
                                  : detail::CoroPromiseBase::kAwaitedByOther;
      h_.promise().continuation_ = caller;
      return h_;
    }
    T await_resume() { return h_.promise().take(); }

   private:
    handle_type h_;  // trivially destructible: GCC 12 may copy awaiters freely
  };
  /// @throws RuntimeError if empty, moved-from or already awaited.
  Awaiter operator co_await() & {
    check_awaitable();
    return Awaiter(h_);
  }
  Awaiter operator co_await() && {
    check_awaitable();
    return Awaiter(h_);
  }

 private:
  explicit Coro(handle_type h) noexcept : h_(h) {}
  void check_awaitable() const {
    if (!h_) throw RuntimeError("co_await on a moved-from or empty Coro");
    if (h_.promise().started_ != detail::CoroPromiseBase::kNotStarted)
      throw RuntimeError("coroutine is already being awaited");
  }
  void destroy() noexcept {
    if (!h_) return;
    if (h_.promise().started_ == detail::CoroPromiseBase::kNotStarted && detail::debug_enabled())
      detail::log_never_awaited(h_.promise().function_name());
    h_.destroy();
    h_ = {};
  }

  handle_type h_;
};

namespace detail {

/// Anything a Coro can co_await: weft's own awaitables and any standard C++
/// awaitable (await_ready/await_suspend/await_resume, or operator co_await).
template <class A>
concept Awaitable = requires(A&& a) {
  get_awaiter(std::forward<A>(a)).await_ready();
  get_awaiter(std::forward<A>(a)).await_resume();
};

template <class A>
struct is_coro : std::false_type {};
template <class T>
struct is_coro<Coro<T>> : std::true_type {};

/// What awaiting an A (as an rvalue) yields, without reference or cv.
template <class A>
using await_value_t = std::remove_cvref_t<decltype(get_awaiter(std::declval<A>()).await_resume())>;

/// Any awaitable as a Coro (the frame holds the awaitable), for the APIs
/// that run an awaitable as a task of its own: create_task, gather, shield...
template <class A, class T = await_value_t<A>>
Coro<T> as_coro(A awaitable) {
  co_return co_await std::move(awaitable);
}

}  // namespace detail

}  // namespace weft

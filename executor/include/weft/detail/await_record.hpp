// AwaitRecord: where a Coro frame awaits and what (the await chains of
// <weft/call_graph.hpp>). CoroPromiseBase::await_transform fills it at every
// co_await: three pointer stores (the await's source location, the awaited
// object, the function that describes it), nothing else. Only a reader that
// has every worker paused (call_graph.cpp) reads it, when the frame is
// suspended: the awaited object then lives in the frame (a co_await
// operand lives until the await resumes).
#pragma once

#include <weft/await_target.hpp>

#include <source_location>
#include <type_traits>

namespace weft::detail {

class CoroPromiseBase;

/// Fills `out` for the awaitable at `object`; returns the awaited Coro's
/// promise when the awaitable is a Coro (the chain continues there).
using AwaitDescribe = const CoroPromiseBase* (*)(const void* object, AwaitTarget& out);

struct AwaitRecord {
  std::source_location where{};
  const void* object = nullptr;
  AwaitDescribe describe = nullptr;
};

/// An awaitable describes itself with a member
/// `const CoroPromiseBase* weft_describe_await(AwaitTarget&) const noexcept`;
/// others are AwaitKind::other.
template <class A>
const CoroPromiseBase* describe_await(const void* object, AwaitTarget& out) {
  using T = std::remove_cvref_t<A>;
  if constexpr (requires(const T& a, AwaitTarget& t) { a.weft_describe_await(t); }) {
    return static_cast<const T*>(object)->weft_describe_await(out);
  } else {
    out.kind = AwaitKind::other;
    return nullptr;
  }
}

}  // namespace weft::detail

// Test helpers shared by weft's GoogleTest suites.
//
//   WEFT_TEST(Suite, Name) { co_await ...; }            // body runs as main of
//                                                        // weft::run(workers = 1)
//   class Suite : public weft::testing::WorkersTest {};
//   WEFT_TEST_P(Suite, Name) { ... workers ... }         // body runs at every
//   INSTANTIATE_TEST_SUITE_P(Workers, Suite,             // worker count given
//                            weft::testing::kWorkerCounts);
//
// GoogleTest's ASSERT_* macros `return`, which a coroutine cannot: use
// CO_ASSERT_TRUE / CO_ASSERT_EQ inside coroutine bodies.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/weft.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <vector>

#ifdef WEFT_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

#include <thread>

namespace weft::testing {

/// A descriptor number that is closed, for bad-input tests. It is far above
/// the lowest free number, which a socket closed in the test would be: the
/// kernel hands out the lowest free number, and a worker may open a
/// descriptor of its own meanwhile (a loop's epoll or eventfd on first use),
/// which the test would then hand to weft as the "closed" one.
inline int closed_fd() {
  int opened = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int high = ::fcntl(opened, F_DUPFD_CLOEXEC, 900);
  ::close(opened);
  ::close(high);
  return high;
}

/// Starts what a sanitizer runtime starts lazily and keeps for the process's
/// life, so that a leak check's baseline taken afterwards includes it:
/// ThreadSanitizer's background thread (started with the first thread
/// created) and the external symbolizer (llvm-symbolizer on two pipes,
/// started the first time a report or a suppression needs a symbol).
inline void start_sanitizer_helpers() {
  std::thread([] {}).join();
#ifdef WEFT_SANITIZED
  char frame[256];
  __sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", frame, sizeof frame);
#endif
}

/// Iteration counts shrink under sanitizers (never raise timeouts instead).
constexpr long scaled(long n) {
#ifdef WEFT_SANITIZED
  return std::max<long>(1, n / 20);
#else
  return n;
#endif
}

class WorkersTest : public ::testing::TestWithParam<unsigned> {};

inline const auto kWorkerCounts = ::testing::Values(1u, 2u, 8u);
/// For tests that are about order: exact asyncio order holds at one worker.
inline const auto kOneWorker = ::testing::Values(1u);

inline std::string worker_name(const ::testing::TestParamInfo<unsigned>& info) {
  return "w" + std::to_string(info.param);
}

/// True when awaiting `awaitable` (a Task or Future handle) raises
/// CancelledError, false when it completes; any other exception propagates.
template <class Awaitable>
Coro<bool> raises_cancelled(Awaitable awaitable) {
  try {
    (void)co_await awaitable;
  } catch (const CancelledError&) {
    co_return true;
  }
  co_return false;
}

/// True when `e` nests a CancelledError (TimeoutError's cause, TMO/WFOR).
inline bool nests_cancelled_error(const TimeoutError& e) {
  try {
    std::rethrow_if_nested(e);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
  }
  return false;
}

/// A vector of tasks built outside any co_await expression (GCC 12 cannot
/// keep an initializer_list's array in a coroutine frame).
template <class... T>
std::vector<Task<int>> tasks_of(T... ts) {
  return {ts...};
}

/// Returns `v` once `gate` is resolved.
inline Coro<int> gated(Future<void> gate, int v) {
  co_await gate;
  co_return v;
}

}  // namespace weft::testing

#define WEFT_TEST(Suite, Name)                                                     \
  static ::weft::Coro<void> weft_body_##Suite##_##Name();                          \
  TEST(Suite, Name) { ::weft::run(weft_body_##Suite##_##Name(), {.workers = 1}); } \
  static ::weft::Coro<void> weft_body_##Suite##_##Name()

#define WEFT_TEST_P(Suite, Name)                                                  \
  static ::weft::Coro<void> weft_body_##Suite##_##Name(unsigned workers);         \
  TEST_P(Suite, Name) {                                                           \
    ::weft::run(weft_body_##Suite##_##Name(GetParam()), {.workers = GetParam()}); \
  }                                                                               \
  static ::weft::Coro<void> weft_body_##Suite##_##Name([[maybe_unused]] unsigned workers)

#define CO_ASSERT_TRUE(cond)                            \
  do {                                                  \
    if (!(cond)) {                                      \
      ADD_FAILURE() << "CO_ASSERT_TRUE failed: " #cond; \
      co_return;                                        \
    }                                                   \
  } while (0)

#define CO_ASSERT_EQ(a, b)                                                                  \
  do {                                                                                      \
    if (!((a) == (b))) {                                                                    \
      ADD_FAILURE() << "CO_ASSERT_EQ failed: " #a " == " #b << " (" << (a) << " vs " << (b) \
                    << ")";                                                                 \
      co_return;                                                                            \
    }                                                                                       \
  } while (0)

// Helpers shared by the sync conformance, stress and misuse tests (issue 4).
#pragma once

#include "weft_test.hpp"

#include <chrono>
#include <functional>

namespace weft::testing {

/// n trips through the ready queue (asyncio's `await asyncio.sleep(0)` n times).
inline Coro<void> ticks(int n = 1) {
  for (int i = 0; i < n; ++i) co_await weft::sleep(std::chrono::nanoseconds(0));
}

/// Polls `pred` every millisecond; false if it stays false for 20 s (a hang
/// guard only: tests never depend on how long this takes).
inline Coro<bool> eventually(std::function<bool()> pred) {
  for (int i = 0; i < 20000; ++i) {
    if (pred()) co_return true;
    co_await weft::sleep(std::chrono::milliseconds(1));
  }
  co_return pred();
}

/// Awaits `t` and reports whether it ended cancelled.
template <class T>
Coro<bool> ended_cancelled(Task<T> t) {
  try {
    co_await t;
  } catch (const CancelledError&) {
  }
  co_return t.cancelled();
}

}  // namespace weft::testing

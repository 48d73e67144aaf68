// LoopOptions: the switches of one event loop, fixed when the loop is made:
// `weft::EventLoop loop({.io_uring = false});` for a standalone loop,
// RunOptions::loop for every loop of a Runtime (and weft::run).
//
// An empty switch takes its default from the environment, where its variable
// is set, else the built-in default; a switch set in the options wins over the
// environment. The variables are read in one place
// (detail::resolve_loop_options), when the loop or the Runtime is made:
//
//   WEFT_DEBUG=1                  debug (any value but "0" or empty: on)
//   WEFT_IO_URING=0               io_uring off
//   WEFT_IO_URING_MULTISHOT=0     io_uring_multishot off
//   WEFT_CHILD_WATCHER=sigchld    child_watcher = ChildWatcher::sigchld
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace weft {

/// How create_subprocess_exec learns that a child exited (<weft/subprocess.hpp>).
enum class ChildWatcher : std::uint8_t {
  /// A pidfd per child, watched by the loop that started it; SIGCHLD where
  /// the kernel has no pidfd_open.
  pidfd,
  /// SIGCHLD, handled on one loop, and a waitpid of each child weft started.
  sigchld,
};

struct LoopOptions {
  /// asyncio's debug mode: slow-callback and never-awaited warnings. Changed
  /// later by EventLoop::set_debug. Empty: WEFT_DEBUG, else off.
  std::optional<bool> debug = std::nullopt;
  /// In debug mode, a callback or task step that takes longer is reported.
  std::chrono::nanoseconds slow_callback_duration = std::chrono::milliseconds(100);
  /// Socket streams and weft::File's reads, writes and syncs use io_uring
  /// where the kernel allows it (docs/executor.md, "io_uring"); off: epoll
  /// and the blocking pool only. Empty: WEFT_IO_URING, else on.
  std::optional<bool> io_uring = std::nullopt;
  /// Receives on the ring are multishot where the kernel supports them.
  /// Empty: WEFT_IO_URING_MULTISHOT, else on.
  std::optional<bool> io_uring_multishot = std::nullopt;
  /// Empty: WEFT_CHILD_WATCHER, else ChildWatcher::pidfd.
  std::optional<ChildWatcher> child_watcher = std::nullopt;
};

namespace detail {
/// `options` with every empty switch filled in (see the top of this file):
/// the only place that reads these environment variables. Every switch of
/// the result has a value.
LoopOptions resolve_loop_options(LoopOptions options);
/// WEFT_WORKERS for RunOptions::workers = 0: its value, or 0 when unset.
/// @throws ValueError unless it is an integer in 1..1024.
unsigned workers_from_environment();
/// WEFT_DEBUG, for what runs outside any loop (never-awaited warnings).
bool debug_from_environment() noexcept;
}  // namespace detail

}  // namespace weft

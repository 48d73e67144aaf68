// What weft::io needs of a loop beyond EventLoop's public API: the reactor
// it parks in (reactor/: the selector and its io_uring) and the owner-thread
// check that decides whether a call may touch that reactor directly or must
// be queued to the loop. Internal: on the include path of weft's own
// targets in the build tree only, never installed.
#pragma once

namespace weft {
class EventLoop;
}

namespace weft::detail {

class Selector;

/// The loop's selector. Owner thread only (LoopImpl's ownership protocol).
Selector& loop_selector(EventLoop& loop) noexcept;
/// True on the thread that owns `loop` (the thread running it, or the one
/// that created it while it does not run).
bool on_loop_thread(EventLoop& loop) noexcept;

}  // namespace weft::detail

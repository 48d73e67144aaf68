#include <weft/detail/loop_reactor.hpp>

#include "loop_impl.hpp"

namespace weft::detail {

Selector& loop_selector(EventLoop& loop) noexcept { return LoopAccess::impl(loop).selector; }

bool on_loop_thread(EventLoop& loop) noexcept { return LoopAccess::impl(loop).on_owner_thread(); }

}  // namespace weft::detail

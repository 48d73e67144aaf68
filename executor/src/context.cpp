#include <weft/detail/context.hpp>

namespace weft::detail {
namespace {
thread_local Context t_thread_context;
thread_local Context* t_active = nullptr;
}  // namespace

Context& current_context() noexcept { return t_active ? *t_active : t_thread_context; }

ContextScope::ContextScope(Context* ctx) noexcept : saved_(t_active) { t_active = ctx; }
ContextScope::~ContextScope() { t_active = saved_; }

}  // namespace weft::detail

// Context: the ContextVar values a task sees (asyncio's contextvars.Context).
//
// A Context is an immutable, shared map; ContextVar::set replaces the running
// context's map with a modified copy, so copying a context into a new task is
// one reference-count increment (none for the empty context) and a task's set
// is invisible to its parent and siblings.
#pragma once

#include <memory>
#include <utility>
#include <vector>

namespace weft::detail {

struct ContextEntry {
  const void* key;
  std::shared_ptr<const void> value;
};
using ContextMap = std::vector<ContextEntry>;
using Context = std::shared_ptr<const ContextMap>;

/// The context of the code running on this thread: the running task's, or the
/// thread's own outside a task.
Context& current_context() noexcept;

/// Installs a context for the lifetime of the scope (a task step, an
/// executor call) and restores the previous one.
class ContextScope {
 public:
  explicit ContextScope(Context* ctx) noexcept;
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  Context* saved_;
};

}  // namespace weft::detail

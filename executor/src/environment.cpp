// The one place that reads weft's environment variables (loop_options.hpp,
// RunOptions::workers). They are defaults only: options set in code win.
#include <weft/errors.hpp>
#include <weft/loop_options.hpp>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>

namespace weft::detail {
namespace {
constexpr long kMaxWorkers = 1024;

const char* variable(const char* name) noexcept {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

bool is_zero(const char* v) noexcept { return v && std::strcmp(v, "0") == 0; }
}  // namespace

bool debug_from_environment() noexcept {
  const char* v = variable("WEFT_DEBUG");
  return v && !is_zero(v);
}

LoopOptions resolve_loop_options(LoopOptions options) {
  if (!options.debug) options.debug = debug_from_environment();
  if (!options.io_uring) options.io_uring = !is_zero(variable("WEFT_IO_URING"));
  if (!options.io_uring_multishot)
    options.io_uring_multishot = !is_zero(variable("WEFT_IO_URING_MULTISHOT"));
  if (!options.child_watcher) {
    const char* v = variable("WEFT_CHILD_WATCHER");
    options.child_watcher =
        v && std::strcmp(v, "sigchld") == 0 ? ChildWatcher::sigchld : ChildWatcher::pidfd;
  }
  return options;
}

unsigned workers_from_environment() {
  const char* env = variable("WEFT_WORKERS");
  if (!env) return 0;
  char* end = nullptr;
  long v = std::strtol(env, &end, 10);
  if (!std::isdigit(static_cast<unsigned char>(*env)) || *end != '\0' || v <= 0 || v > kMaxWorkers)
    throw ValueError(std::string("WEFT_WORKERS must be an integer in 1..1024, got '") + env + "'");
  return static_cast<unsigned>(v);
}

}  // namespace weft::detail

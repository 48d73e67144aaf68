// ContextVar<T>: asyncio's contextvars.ContextVar.
//
// Each task starts with a copy of the context of the code that created it;
// set() inside a task is invisible to its parent and its siblings. to_thread
// runs its function with the caller's context. A ContextVar must outlive every
// context holding a value for it (declare them at namespace scope, as in Python).
#pragma once

#include <weft/detail/context.hpp>
#include <weft/errors.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace weft {

template <class T>
class ContextVar {
 public:
  /// What set() returns: reset(token) restores the value seen before that set.
  class Token {
   public:
    const ContextVar* var() const noexcept { return var_; }

   private:
    friend class ContextVar;
    Token(const ContextVar* var, std::shared_ptr<const void> old)
        : var_(var), old_(std::move(old)) {}
    const ContextVar* var_;
    std::shared_ptr<const void> old_;  // null: the variable had no value
    bool used_ = false;
  };

  explicit ContextVar(std::string name) : name_(std::move(name)) {}
  ContextVar(std::string name, T default_value)
      : name_(std::move(name)), default_(std::move(default_value)) {}
  ContextVar(const ContextVar&) = delete;
  ContextVar& operator=(const ContextVar&) = delete;

  const std::string& name() const noexcept { return name_; }

  /// The value in the running context, else the default.
  /// @throws weft::LookupError-like weft::ValueError when neither exists.
  T get() const {
    if (auto v = find()) return *static_cast<const T*>(v.get());
    if (default_) return *default_;
    throw ValueError("ContextVar '" + name_ + "' has no value and no default");
  }
  /// The value in the running context, else `fallback`.
  T get(T fallback) const {
    if (auto v = find()) return *static_cast<const T*>(v.get());
    return fallback;
  }

  Token set(T value) {
    auto old = find();
    write(std::make_shared<const T>(std::move(value)));
    return Token(this, std::move(old));
  }

  /// Restores the value from before the set() that returned `token`.
  /// @throws weft::RuntimeError if the token was already used,
  ///         weft::ValueError if it belongs to another variable.
  void reset(Token& token) {
    if (token.var_ != this)
      throw ValueError("ContextVar::reset: token was created by a different ContextVar");
    if (token.used_) throw RuntimeError("ContextVar::reset: token has already been used once");
    token.used_ = true;
    write(token.old_);
  }

 private:
  std::shared_ptr<const void> find() const {
    const auto& ctx = detail::current_context();
    if (!ctx) return nullptr;
    for (const auto& e : *ctx)
      if (e.key == this) return e.value;
    return nullptr;
  }
  void write(std::shared_ptr<const void> value) {
    auto& ctx = detail::current_context();
    auto next = std::make_shared<detail::ContextMap>();
    if (ctx) {
      next->reserve(ctx->size() + 1);
      for (const auto& e : *ctx)
        if (e.key != this) next->push_back(e);
    }
    if (value) next->push_back({this, std::move(value)});
    ctx = std::move(next);
  }

  std::string name_;
  std::optional<T> default_;
};

}  // namespace weft

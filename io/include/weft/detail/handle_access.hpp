// How io's sources make and read its public handles (Server, File, Process,
// DatagramSocket, StreamReader, StreamWriter, SslContext): their state
// constructors and accessors are private, not part of the API, and each of
// those classes befriends this struct.
#pragma once

#include <utility>

namespace weft::detail {

struct HandleAccess {
  /// `Handle(args...)` through its private constructor.
  template <class Handle, class... Args>
  static Handle make(Args&&... args) {
    return Handle(std::forward<Args>(args)...);
  }
  /// The handle's shared state.
  template <class Handle>
  static const auto& state(const Handle& h) noexcept {
    return h.state_;
  }
};

}  // namespace weft::detail

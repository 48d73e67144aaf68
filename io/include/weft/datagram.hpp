// Datagram sockets: asyncio's create_datagram_endpoint, in the shape of a
// socket with awaitable recvfrom / sendto (docs/api.md, io).
//
//   auto sock = co_await weft::create_datagram_endpoint(weft::Address::ip("127.0.0.1", 0));
//   co_await sock.sendto("ping", peer);
//   auto [data, from] = co_await sock.recvfrom();
//
// UDP over IPv4 / IPv6, or Unix datagram sockets. The socket's fd is
// registered with the loop that created it (docs/architecture.md, invariant 6); tasks
// on any worker may send and receive on it, and several may wait at once
// (each readiness report wakes every waiter; those that find nothing wait
// again). Datagrams are never split or merged: a datagram longer than
// recvfrom's `max` is truncated, as recvfrom(2) does.
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/detail/handle_access.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace weft {

namespace detail {
class DatagramState;
}  // namespace detail

/// A datagram socket. A cheap copyable handle; the socket closes on close()
/// or when the last handle is dropped. Every member may be called from any
/// thread; close it before its loop ends.
class DatagramSocket {
 public:
  /// Waits for one datagram; returns its bytes (at most `max`) and sender.
  /// @throws std::system_error for socket errors (e.g. connection_refused
  ///         reported by ICMP on a connected socket; bad_file_descriptor
  ///         once closed, also for a recvfrom waiting when close() is called).
  Coro<std::pair<std::string, Address>> recvfrom(std::size_t max = 65536);
  /// Sends one datagram to `to`, or to the connected remote when empty.
  /// @throws std::system_error (message_size for a datagram too large,
  ///         destination_address_required with neither `to` nor a remote,
  ///         bad_file_descriptor once closed).
  Coro<void> sendto(std::string_view data, std::optional<Address> to = {});
  /// The local address (the port the kernel chose for port 0).
  /// @throws std::system_error once closed.
  Address sockname() const;
  /// The connected remote, if any.
  std::optional<Address> peername() const;
  /// Closes the socket (idempotent); waiting operations fail with
  /// bad_file_descriptor.
  void close();
  bool is_closing() const;

 private:
  friend struct detail::HandleAccess;
  explicit DatagramSocket(std::shared_ptr<detail::DatagramState> state) noexcept
      : state_(std::move(state)) {}
  std::shared_ptr<detail::DatagramState> state_;
};

/// Opens a datagram socket bound to `local` (if given) and connected to
/// `remote` (if given); the family comes from whichever is given. Call from
/// a task (the running loop owns the socket).
/// @throws ValueError when neither address is given or their families
///         differ; std::system_error from socket/bind/connect, naming the
///         address; RuntimeError outside a running loop.
Coro<DatagramSocket> create_datagram_endpoint(std::optional<Address> local,
                                              std::optional<Address> remote = {});

}  // namespace weft

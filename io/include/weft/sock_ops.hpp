// asyncio's low-level socket operations and name resolution on a loop
// (loop.sock_recv(sock, n), loop.getaddrinfo(host, port), ...), on
// non-blocking fds. Each takes the loop first, where asyncio has it before
// the dot: `co_await weft::sock_recv(loop, fd, n)`. Deviation (docs/api.md,
// io): they are free functions of weft::io because EventLoop belongs to
// weft::executor, which knows nothing of sockets.
//
// An operation waits for readiness on `loop` (its selector), so the fd must
// not be registered with another loop meanwhile. Every buffer or string_view
// argument must outlive the await. Errors are std::system_error with the
// errno and the operation's name.
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/event_loop.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft {

/// Up to `n` bytes; empty at EOF (loop.sock_recv).
Coro<std::string> sock_recv(EventLoop& loop, int fd, std::size_t n);
/// Receives up to buffer.size() bytes into `buffer`; returns the count, 0 at
/// EOF (loop.sock_recv_into).
Coro<std::size_t> sock_recv_into(EventLoop& loop, int fd, std::span<std::byte> buffer);
/// One datagram of at most `n` bytes (the rest of a longer one is dropped,
/// as recvfrom(2)) and its sender (loop.sock_recvfrom).
Coro<std::pair<std::string, Address>> sock_recvfrom(EventLoop& loop, int fd, std::size_t n);
/// One datagram into `buffer` (the rest of a longer datagram is dropped):
/// the bytes received and the sender (loop.sock_recvfrom_into).
Coro<std::pair<std::size_t, Address>> sock_recvfrom_into(EventLoop& loop, int fd,
                                                         std::span<std::byte> buffer);
/// Sends `data` as one datagram to `address`; returns the bytes sent
/// (loop.sock_sendto). @throws std::system_error (e.g. EAFNOSUPPORT for an
/// address of another family than the socket's).
Coro<std::size_t> sock_sendto(EventLoop& loop, int fd, std::string_view data,
                              const Address& address);
/// Sends all of `data` (loop.sock_sendall).
Coro<void> sock_sendall(EventLoop& loop, int fd, std::string_view data);
/// A connection on a listening fd: the new fd (non-blocking, close-on-exec)
/// and the peer's address (loop.sock_accept).
Coro<std::pair<int, Address>> sock_accept(EventLoop& loop, int fd);
/// Connects `fd` to `address` (loop.sock_connect).
Coro<void> sock_connect(EventLoop& loop, int fd, const Address& address);
/// Resolves `host` and `port` on the loop's default executor, never on a
/// worker (loop.getaddrinfo). The port is a string (a number or a service
/// name); an empty host is the wildcard (AI_PASSIVE). @throws
/// std::system_error with gai_category() for a resolution failure.
Coro<std::vector<AddrInfo>> getaddrinfo(EventLoop& loop, std::string host, std::string port,
                                        int family = 0, int type = SOCK_STREAM);

}  // namespace weft

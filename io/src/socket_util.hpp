// Small socket helpers shared by the io sources (internal).
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/event_loop.hpp>

#include <cerrno>
#include <optional>
#include <string>
#include <system_error>

namespace weft::detail {

/// std::system_error(err) with "<op> <address>: <strerror>" as asyncio words it.
[[noreturn]] void throw_os_error(int err, const std::string& op);
std::system_error os_error(int err, const std::string& op);

/// A non-blocking, close-on-exec socket. @throws std::system_error.
int make_socket(int family, int type, int protocol = 0);

/// Sets SIGPIPE to SIG_IGN, once per process and only if it is at its
/// default action (as Python does at startup): a write(2) to a pipe, or a
/// sendfile(2) to a socket, whose reader went away then fails with EPIPE
/// instead of killing the process (they have no MSG_NOSIGNAL).
void ignore_sigpipe_once();

/// Socket options common to ConnectOptions and ServerOptions.
struct SocketTuning {
  bool nodelay = true;     // TCP only; false turns it off explicitly
  bool keepalive = false;  // false leaves SO_KEEPALIVE as it is
  int recv_buffer_size = 0;
  int send_buffer_size = 0;
};
/// @throws ValueError naming `where` for a negative buffer size.
void check_tuning(const SocketTuning& tuning, const char* where);
/// Sets what `tuning` asks for on `fd` of `family` (TCP_NODELAY only for
/// AF_INET/AF_INET6). @throws std::system_error naming `where`.
void apply_tuning(int fd, int family, const SocketTuning& tuning, const std::string& where);
/// Checks a socket handed in by the caller: open (EBADF as
/// std::system_error), a stream socket of AF_INET, AF_INET6 or AF_UNIX
/// (ValueError otherwise). Returns its family; changes nothing.
int check_stream_socket(int fd, const std::string& where);
/// Makes an adopted fd non-blocking and close-on-exec. @throws std::system_error.
void adopt_fd(int fd, const std::string& where);

/// getpeername / getsockname, or empty when unavailable.
std::optional<Address> peer_address(int fd);
std::optional<Address> local_address(int fd);

/// Closes `fd` on `loop`'s thread after removing its registrations there, so
/// that the fd number cannot be reused while the loop still watches it.
void close_on_loop(EventLoop& loop, int fd) noexcept;

/// Runs `fn` now when the caller is on `loop`'s thread, else queues it there.
/// Returns false (fn dropped) if the loop is closed.
bool run_on_loop(EventLoop& loop, Callback fn) noexcept;

/// Waits until `fd` is readable (write = false) or writable on `loop`; false
/// if `timeout` passed first. The registration is made on `loop` and is
/// removed there before the caller resumes (or, when the awaiting task is
/// cancelled, by a removal queued to `loop` before CancelledError propagates).
Coro<bool> wait_fd(EventLoop& loop, int fd, bool write, std::optional<Duration> timeout = {});

/// Connects a non-blocking socket, waiting on the running loop. On failure
/// (or cancellation) the fd is closed; the error names the address.
/// @throws std::system_error, TimeoutError.
Coro<void> connect_socket(int fd, Address address, std::optional<Duration> timeout = {});

}  // namespace weft::detail

// Datagram sockets: create_datagram_endpoint and DatagramSocket.
// Contract in <weft/datagram.hpp>.
//
// Protocol:
// - The fd belongs to the creating loop: readiness registrations are made and
//   removed only on that loop's thread, and the fd is closed there
//   (close_on_loop), after its registrations are gone.
// - `mu_` guards `closed_`, the waiter lists and the armed flags. Every
//   syscall on the fd happens under `mu_` after checking `closed_`, so no
//   operation can touch the fd number once close() has handed it to the loop
//   for closing (it could be reused by then).
// - Waiting: a task that got EAGAIN adds a Future to the waiter list of that
//   direction; the first waiter arms the registration on the loop. The
//   readiness callback disarms (removing the registration) and completes
//   every waiter, who retry the syscall; losers wait again. A registration
//   callback holds a reference to the state, so the state outlives it.
#include <weft/datagram.hpp>
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/future.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <system_error>
#include <vector>

#include "socket_util.hpp"

namespace weft {
namespace detail {

class DatagramState : public std::enable_shared_from_this<DatagramState> {
 public:
  DatagramState(EventLoop& loop, int fd, std::optional<Address> remote)
      : loop_(&loop), fd_(fd), remote_(std::move(remote)) {}
  ~DatagramState() {
    // No registration is left: each one holds a reference to this state.
    if (!closed_) ::close(fd_);
  }
  DatagramState(const DatagramState&) = delete;
  DatagramState& operator=(const DatagramState&) = delete;

  const std::optional<Address>& remote() const noexcept { return remote_; }

  // Runs `op` (a syscall on the fd) under the lock; returns its result and errno.
  template <class Op>
  std::pair<ssize_t, int> attempt(Op op) {
    std::lock_guard lock(mu_);
    if (closed_) return {-1, EBADF};
    ssize_t r = op(fd_);
    return {r, r < 0 ? errno : 0};
  }

  Address sockname() const {
    std::lock_guard lock(mu_);
    if (closed_) throw_os_error(EBADF, "getsockname");
    std::optional<Address> a = local_address(fd_);
    if (!a) throw_os_error(errno, "getsockname");
    return *a;
  }

  bool closing() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

  // Any thread: waits until the fd is readable (write = false) or writable.
  // @throws std::system_error(EBADF) if closed before or while waiting.
  Coro<void> wait(bool write) {
    Future<void> ready;
    bool arm = false;
    {
      std::lock_guard lock(mu_);
      if (closed_) throw_os_error(EBADF, write ? "sendto" : "recvfrom");
      waiters_[write].push_back(ready);
      arm = !std::exchange(armed_[write], true);
    }
    if (arm) {
      std::shared_ptr<DatagramState> self = shared_from_this();
      if (!run_on_loop(*loop_, [self, write] { self->arm(write); }))
        fail_waiters(std::make_exception_ptr(
            RuntimeError("DatagramSocket: the socket's event loop is closed")));
    }
    co_await ready;
  }

  void close() {
    {
      std::lock_guard lock(mu_);
      if (std::exchange(closed_, true)) return;
    }
    fail_waiters(std::make_exception_ptr(os_error(EBADF, "DatagramSocket closed")));
    close_on_loop(*loop_, fd_);
  }

 private:
  // On the loop's thread.
  void arm(bool write) {
    std::lock_guard lock(mu_);
    if (closed_ || waiters_[write].empty()) {
      armed_[write] = false;
      return;
    }
    std::shared_ptr<DatagramState> self = shared_from_this();
    Callback cb = [self, write] { self->on_ready(write); };
    if (write)
      loop_->add_writer(fd_, std::move(cb));
    else
      loop_->add_reader(fd_, std::move(cb));
  }

  // On the loop's thread: the registration fired.
  void on_ready(bool write) {
    std::vector<Future<void>> woken;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;  // close_on_loop removes the registration
      woken.swap(waiters_[write]);
      armed_[write] = false;
      // The running callback keeps its own reference: this does not destroy us.
      if (write)
        loop_->remove_writer(fd_);
      else
        loop_->remove_reader(fd_);
    }
    for (Future<void>& f : woken) {
      if (!f.done()) {
        try {
          f.set_result();
        } catch (const InvalidStateError&) {
          // Cancelled meanwhile by its task.
        }
      }
    }
  }

  void fail_waiters(const std::exception_ptr& error) {
    std::vector<Future<void>> woken;
    {
      std::lock_guard lock(mu_);
      for (auto& list : waiters_) {
        woken.insert(woken.end(), list.begin(), list.end());
        list.clear();
      }
    }
    for (Future<void>& f : woken) {
      try {
        f.set_exception(error);
      } catch (const InvalidStateError&) {
      }
    }
  }

  EventLoop* const loop_;
  const int fd_;
  const std::optional<Address> remote_;
  mutable std::mutex mu_;
  bool closed_ = false;                   // guarded by mu_
  std::vector<Future<void>> waiters_[2];  // guarded by mu_; [0] read, [1] write
  bool armed_[2] = {false, false};        // guarded by mu_
};

}  // namespace detail

Coro<std::pair<std::string, Address>> DatagramSocket::recvfrom(std::size_t max) {
  std::shared_ptr<detail::DatagramState> state = state_;
  std::string buffer(max, '\0');
  for (;;) {
    sockaddr_storage from{};
    socklen_t length = sizeof from;
    auto [n, err] = state->attempt([&](int fd) {
      return ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from),
                        &length);
    });
    if (n >= 0) {
      buffer.resize(static_cast<std::size_t>(n));
      Address sender = length > 0 ? Address::from_storage(from, length) : Address();
      co_return std::pair<std::string, Address>(std::move(buffer), std::move(sender));
    }
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) detail::throw_os_error(err, "recvfrom");
    co_await state->wait(false);
  }
}

Coro<void> DatagramSocket::sendto(std::string_view data, std::optional<Address> to) {
  std::shared_ptr<detail::DatagramState> state = state_;
  std::string bytes(data);  // the caller's view need not outlive a suspension
  for (;;) {
    auto [n, err] = state->attempt([&](int fd) {
      return to ? ::sendto(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL, to->sockaddr_ptr(),
                           to->length())
                : ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    });
    if (n >= 0) co_return;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      const std::optional<Address>& target = to ? to : state->remote();
      detail::throw_os_error(err, target ? "sendto " + target->to_string() : std::string("sendto"));
    }
    co_await state->wait(true);
  }
}

Address DatagramSocket::sockname() const { return state_->sockname(); }
std::optional<Address> DatagramSocket::peername() const { return state_->remote(); }
void DatagramSocket::close() { state_->close(); }
bool DatagramSocket::is_closing() const { return state_->closing(); }

Coro<DatagramSocket> create_datagram_endpoint(std::optional<Address> local,
                                              std::optional<Address> remote) {
  if (!local && !remote)
    throw ValueError("create_datagram_endpoint: a local or a remote address is required");
  if (local && remote && local->family() != remote->family())
    throw ValueError("create_datagram_endpoint: local " + local->to_string() + " and remote " +
                     remote->to_string() + " are of different families");
  EventLoop& loop = get_running_loop();
  int fd = detail::make_socket(local ? local->family() : remote->family(), SOCK_DGRAM);
  try {
    if (local && ::bind(fd, local->sockaddr_ptr(), local->length()) != 0)
      detail::throw_os_error(errno, "bind " + local->to_string());
    if (remote && ::connect(fd, remote->sockaddr_ptr(), remote->length()) != 0)
      detail::throw_os_error(errno, "connect " + remote->to_string());
  } catch (...) {
    ::close(fd);
    throw;
  }
  co_return detail::HandleAccess::make<DatagramSocket>(
      std::make_shared<detail::DatagramState>(loop, fd, std::move(remote)));
}

}  // namespace weft

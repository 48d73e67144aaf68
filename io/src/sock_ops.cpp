// The low-level socket operations (sock_ops.hpp: asyncio's loop.sock_*), name
// resolution on the blocking pool, and the fd-readiness wait they share.
//
// wait_fd protocol: the fd callback and the timeout timer both run on the
// registering loop's thread, so they are serialised; whichever runs first
// removes the registration and completes the future, the other sees the
// future done and does nothing. A cancelled waiter queues the removal to the
// loop (the future is then already done, so neither callback acts).
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/offload.hpp>
#include <weft/sock_ops.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "socket_util.hpp"

namespace weft {
namespace detail {

Coro<bool> wait_fd(EventLoop& loop, int fd, bool write, std::optional<Duration> timeout) {
  Future<bool> ready;
  EventLoop* lp = &loop;
  auto finish = [ready, lp, fd, write](bool ok) {
    if (ready.done()) return;
    if (write)
      lp->remove_writer(fd);
    else
      lp->remove_reader(fd);
    detail::FutureAccess::state(ready)->set_value(ok);
  };
  if (write)
    loop.add_writer(fd, [finish] { finish(true); });
  else
    loop.add_reader(fd, [finish] { finish(true); });
  TimerHandle timer;
  if (timeout) timer = loop.call_later(*timeout, [finish] { finish(false); });
  bool ok = false;
  try {
    ok = co_await ready;
  } catch (...) {
    timer.cancel();
    run_on_loop(loop, [lp, fd, write] {
      if (write)
        lp->remove_writer(fd);
      else
        lp->remove_reader(fd);
    });
    throw;
  }
  timer.cancel();
  co_return ok;
}

Coro<void> connect_socket(int fd, Address address, std::optional<Duration> timeout) {
  EventLoop& loop = get_running_loop();
  if (::connect(fd, address.sockaddr_ptr(), address.length()) == 0) co_return;
  if (errno != EINPROGRESS && errno != EINTR) {
    int err = errno;
    ::close(fd);
    throw_os_error(err, "connect to " + address.to_string());
  }
  bool ready = false;
  try {
    ready = co_await wait_fd(loop, fd, true, timeout);
  } catch (...) {
    close_on_loop(loop, fd);  // after wait_fd's queued removal
    throw;
  }
  // Here the registration is gone (removed on `loop` before we resumed).
  if (!ready) {
    ::close(fd);
    throw TimeoutError("connect to " + address.to_string() + ": timed out");
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) {
    ::close(fd);
    throw_os_error(err, "connect to " + address.to_string());
  }
}

}  // namespace detail

Coro<std::string> sock_recv(EventLoop& loop, int fd, std::size_t n) {
  std::string buf(n, '\0');
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), n, 0);
    if (r >= 0) {
      buf.resize(static_cast<std::size_t>(r));
      co_return buf;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_os_error(errno, "sock_recv");
    co_await detail::wait_fd(loop, fd, false);
  }
}

Coro<std::size_t> sock_recv_into(EventLoop& loop, int fd, std::span<std::byte> buffer) {
  for (;;) {
    ssize_t r = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (r >= 0) co_return static_cast<std::size_t>(r);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_os_error(errno, "sock_recv_into");
    co_await detail::wait_fd(loop, fd, false);
  }
}

Coro<std::pair<std::string, Address>> sock_recvfrom(EventLoop& loop, int fd, std::size_t n) {
  std::string buf(n, '\0');
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ssize_t r = ::recvfrom(fd, buf.data(), n, 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r >= 0) {
      buf.resize(static_cast<std::size_t>(r));
      // A connected stream socket reports no sender: the empty Address.
      // A family Address cannot hold: the datagram is still the caller's.
      Address from;
      try {
        if (len > 0) from = Address::from_storage(ss, len);
      } catch (const ValueError&) {
      }
      co_return std::pair<std::string, Address>(std::move(buf), from);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_os_error(errno, "sock_recvfrom");
    co_await detail::wait_fd(loop, fd, false);
  }
}

Coro<std::pair<std::size_t, Address>> sock_recvfrom_into(EventLoop& loop, int fd,
                                                         std::span<std::byte> buffer) {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ssize_t r =
        ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r >= 0) {
      Address from;  // as sock_recvfrom: empty for a stream socket or a foreign family
      try {
        if (len > 0) from = Address::from_storage(ss, len);
      } catch (const ValueError&) {
      }
      co_return std::pair<std::size_t, Address>(static_cast<std::size_t>(r), from);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      detail::throw_os_error(errno, "sock_recvfrom_into");
    co_await detail::wait_fd(loop, fd, false);
  }
}

Coro<std::size_t> sock_sendto(EventLoop& loop, int fd, std::string_view data,
                              const Address& address) {
  Address target = address;  // the caller's reference may not outlive the first suspension
  for (;;) {
    ssize_t r = ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                         target.sockaddr_ptr(), target.length());
    if (r >= 0) co_return static_cast<std::size_t>(r);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      detail::throw_os_error(errno, "sock_sendto " + target.to_string());
    co_await detail::wait_fd(loop, fd, true);
  }
}

Coro<void> sock_sendall(EventLoop& loop, int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t r = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0) {
      data.remove_prefix(static_cast<std::size_t>(r));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_os_error(errno, "sock_sendall");
    co_await detail::wait_fd(loop, fd, true);
  }
}

Coro<std::pair<int, Address>> sock_accept(EventLoop& loop, int fd) {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int c = ::accept4(fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) co_return std::pair<int, Address>(c, Address::from_storage(ss, len));
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) detail::throw_os_error(errno, "sock_accept");
    co_await detail::wait_fd(loop, fd, false);
  }
}

Coro<void> sock_connect(EventLoop& loop, int fd, const Address& address) {
  Address target = address;  // the caller's reference may not outlive the first suspension
  if (::connect(fd, target.sockaddr_ptr(), target.length()) == 0) co_return;
  if (errno != EINPROGRESS && errno != EINTR)
    detail::throw_os_error(errno, "connect to " + target.to_string());
  co_await detail::wait_fd(loop, fd, true);
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) detail::throw_os_error(err, "connect to " + target.to_string());
}

Coro<std::vector<AddrInfo>> getaddrinfo(EventLoop& loop, std::string host, std::string port,
                                        int family, int type) {
  auto resolve = [host, port, family, type]() -> std::vector<AddrInfo> {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = type;
    if (host.empty()) hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
    std::string what = "getaddrinfo " + (host.empty() ? std::string("*") : host) + ":" + port;
    if (rc == EAI_SYSTEM) detail::throw_os_error(errno, what);
    if (rc != 0) throw std::system_error(rc, gai_category(), what);
    std::vector<AddrInfo> out;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6 && ai->ai_family != AF_UNIX)
        continue;
      out.push_back({ai->ai_family, ai->ai_socktype, ai->ai_protocol,
                     Address::from_sockaddr(ai->ai_addr, ai->ai_addrlen)});
    }
    ::freeaddrinfo(res);
    return out;
  };
  // Never on a worker: ::getaddrinfo may block for seconds (invariant 8).
  co_return co_await loop.run_in_executor(nullptr, std::move(resolve));
}

}  // namespace weft

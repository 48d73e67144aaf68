// Address: a socket address (IPv4, IPv6 or a Unix path) and AddrInfo, one
// result of name resolution (docs/api.md, io).
//
// An Address is a plain value (a sockaddr_storage plus its length): copyable,
// comparable, safe to share between threads once built. It prints as
// `host:port` for IPv4, `[host]:port` for IPv6 and the path for a Unix socket
// (an abstract Unix name prints with a leading '@').
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>

namespace weft {

class Address {
 public:
  /// The empty address (family AF_UNSPEC); prints as "<unspecified>".
  Address() noexcept;

  /// An IP literal ("127.0.0.1", "::1", "fe80::1%eth0") and a port.
  /// @throws ValueError when `host` is not a numeric IPv4/IPv6 address.
  static Address ip(std::string_view host, std::uint16_t port);
  /// A Unix socket path; a leading '\0' or '@' names an abstract socket.
  /// @throws ValueError if the path does not fit in sockaddr_un, or if a
  /// filesystem path (not abstract) holds a NUL byte.
  static Address unix_path(std::string_view path);
  /// Parses what to_string() prints: "1.2.3.4:80", "[::1]:80", or a path
  /// (anything starting with '/', '.', '@').
  /// @throws ValueError on anything else.
  static Address parse(std::string_view text);
  /// Copies a kernel-filled sockaddr (accept, getpeername, recvfrom).
  /// @throws ValueError for a family other than AF_INET, AF_INET6, AF_UNIX.
  static Address from_sockaddr(const sockaddr* sa, socklen_t length);
  static Address from_storage(const sockaddr_storage& storage, socklen_t length) {
    return from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length);
  }

  /// AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC.
  int family() const noexcept { return storage_.ss_family; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }
  bool empty() const noexcept { return family() == AF_UNSPEC; }
  /// The numeric host ("127.0.0.1", "::1"), or the path of a Unix address.
  std::string host() const;
  /// The port (host byte order); 0 for Unix and empty addresses.
  std::uint16_t port() const noexcept;
  /// "host:port", "[v6host]:port", or the path.
  std::string to_string() const;

  const sockaddr* sockaddr_ptr() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  socklen_t length() const noexcept { return length_; }
  const sockaddr_storage& storage() const noexcept { return storage_; }

  friend bool operator==(const Address& a, const Address& b) noexcept;
  friend std::ostream& operator<<(std::ostream& os, const Address& a) {
    return os << a.to_string();
  }

 private:
  sockaddr_storage storage_;
  socklen_t length_;
};

/// One getaddrinfo result (asyncio's (family, type, proto, canonname, sockaddr)).
struct AddrInfo {
  int family = AF_UNSPEC;
  int type = SOCK_STREAM;
  int protocol = 0;
  Address address;
};

/// The error category of getaddrinfo's EAI_* codes (message: gai_strerror).
/// Resolution failures are std::system_error(code, gai_category(), "getaddrinfo host:port").
const std::error_category& gai_category() noexcept;

}  // namespace weft

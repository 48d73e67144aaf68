// Address and the getaddrinfo error category (see address.hpp).
#include <weft/address.hpp>
#include <weft/errors.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>

namespace weft {

Address::Address() noexcept : storage_{}, length_(0) { storage_.ss_family = AF_UNSPEC; }

Address Address::ip(std::string_view host, std::uint16_t port) {
  Address a;
  std::string h(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (::inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.length_ = sizeof(sockaddr_in);
    return a;
  }
  a.storage_ = {};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  std::string scope;
  if (auto pct = h.find('%'); pct != std::string::npos) {
    scope = h.substr(pct + 1);
    h.resize(pct);
  }
  if (::inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    if (!scope.empty()) {
      unsigned idx = ::if_nametoindex(scope.c_str());
      if (idx == 0) {
        char* end = nullptr;
        unsigned long n = std::strtoul(scope.c_str(), &end, 10);
        if (!end || *end) throw ValueError("invalid IPv6 scope: " + scope);
        idx = static_cast<unsigned>(n);
      }
      v6->sin6_scope_id = idx;
    }
    a.length_ = sizeof(sockaddr_in6);
    return a;
  }
  throw ValueError("not an IP address: '" + std::string(host) + "'");
}

Address Address::unix_path(std::string_view path) {
  Address a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  std::string p(path);
  if (!p.empty() && p.front() == '@') p.front() = '\0';
  if (p.empty() || p.size() >= sizeof(un->sun_path))
    throw ValueError("invalid Unix socket path (empty or longer than " +
                     std::to_string(sizeof(un->sun_path) - 1) + " bytes)");
  // The kernel ends a filesystem path at its first NUL: "/a\0b" would name
  // "/a" and print as "/a" (found by fuzz/address_fuzz). Python's
  // "embedded null byte". An abstract name may hold NULs.
  if (p.front() != '\0' && p.find('\0') != std::string::npos)
    throw ValueError("invalid Unix socket path (embedded null byte)");
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, p.data(), p.size());
  a.length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + p.size() +
                                     (p.front() == '\0' ? 0 : 1));
  return a;
}

Address Address::parse(std::string_view text) {
  if (text.empty()) throw ValueError("empty address");
  if (text.front() == '/' || text.front() == '.' || text.front() == '@') return unix_path(text);
  std::string_view host, port;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw ValueError("invalid address: '" + std::string(text) + "'");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      throw ValueError("invalid address (expected host:port or [v6]:port): '" + std::string(text) +
                       "'");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos)
    throw ValueError("invalid port in address: '" + std::string(text) + "'");
  unsigned long p = std::stoul(std::string(port));
  if (p > 65535) throw ValueError("port out of range in address: '" + std::string(text) + "'");
  return ip(host, static_cast<std::uint16_t>(p));
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t length) {
  if (!sa || length < static_cast<socklen_t>(sizeof(sa_family_t)) ||
      length > static_cast<socklen_t>(sizeof(sockaddr_storage)))
    throw ValueError("invalid sockaddr length");
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6 && sa->sa_family != AF_UNIX)
    throw ValueError("unsupported address family " + std::to_string(sa->sa_family));
  Address a;
  std::memcpy(&a.storage_, sa, length);
  a.length_ = length;
  return a;
}

std::string Address::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  switch (family()) {
    case AF_INET: {
      auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage_);
      ::inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
      return buf;
    }
    case AF_INET6: {
      auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
      std::string h = buf;
      if (v6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE] = {};
        h += '%';
        h += ::if_indextoname(v6->sin6_scope_id, name) ? std::string(name)
                                                       : std::to_string(v6->sin6_scope_id);
      }
      return h;
    }
    case AF_UNIX: {
      auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      std::size_t n =
          length_ > offsetof(sockaddr_un, sun_path) ? length_ - offsetof(sockaddr_un, sun_path) : 0;
      if (n == 0) return {};  // an unnamed socket (e.g. the client end)
      if (un->sun_path[0] == '\0') {
        // Built by append, not "@" + string: GCC 12's -Wrestrict misfires on the latter.
        std::string abstract_name("@");
        abstract_name.append(un->sun_path + 1, n - 1);
        return abstract_name;
      }
      return std::string(un->sun_path, ::strnlen(un->sun_path, n));
    }
    default:
      return {};
  }
}

std::uint16_t Address::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string Address::to_string() const {
  switch (family()) {
    case AF_INET:
      return host() + ":" + std::to_string(port());
    case AF_INET6: {
      std::string text("[");
      text.append(host()).append("]:").append(std::to_string(port()));
      return text;
    }
    case AF_UNIX:
      return host();
    default:
      return "<unspecified>";
  }
}

bool operator==(const Address& a, const Address& b) noexcept {
  return a.length_ == b.length_ && std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
}

namespace {
class GaiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};
}  // namespace

const std::error_category& gai_category() noexcept {
  static const GaiCategory category;
  return category;
}

}  // namespace weft

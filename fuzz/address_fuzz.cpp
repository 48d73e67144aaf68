// Address: parse() of arbitrary text either throws ValueError or gives an
// address that prints as text which parses back to the same address (and,
// for IP addresses, equals Address::ip(host(), port())); from_sockaddr() of
// arbitrary bytes either throws ValueError or gives an address whose
// host(), port() and to_string() work (no read past what the kernel would
// have filled, under ASan).
#include <weft/weft.hpp>

#include <cstring>
#include <string>

#include "fuzz_input.hpp"
#include "harness.hpp"

namespace {

using weft::fuzz::fail;
using weft::fuzz::show;

void parse_round_trip(const std::string& text) {
  weft::Address a;
  try {
    a = weft::Address::parse(text);
  } catch (const weft::ValueError&) {
    return;
  }
  std::string printed = a.to_string();
  weft::Address b;
  try {
    b = weft::Address::parse(printed);
  } catch (const weft::ValueError& e) {
    fail("address", "parse(" + show(text) + ") prints as " + show(printed) +
                        ", which does not parse: " + e.what());
  }
  if (!(a == b))
    fail("address", "parse(" + show(text) + ") prints as " + show(printed) +
                        ", which parses to a different address");
  if (!a.is_unix()) {
    weft::Address c = weft::Address::ip(a.host(), a.port());
    if (!(a == c))
      fail("address",
           "parse(" + show(text) + ") differs from ip(host(), port()) = " + show(c.to_string()));
  }
}

void from_bytes(const std::string& bytes) {
  sockaddr_storage storage{};
  std::size_t n = std::min(bytes.size(), sizeof storage);
  std::memcpy(&storage, bytes.data(), n);
  try {
    weft::Address a = weft::Address::from_storage(storage, static_cast<socklen_t>(n));
    (void)a.host();
    (void)a.port();
    (void)a.to_string();
  } catch (const weft::ValueError&) {
  }
}

}  // namespace

int weft_fuzz_address(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 4 == 0) {
    // A kernel-style sockaddr: the family in the first two bytes.
    std::string bytes = rest;
    if (bytes.size() >= 2) {
      static const sa_family_t families[] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
      sa_family_t f = families[static_cast<unsigned char>(bytes[0]) % 4];
      std::memcpy(bytes.data(), &f, sizeof f);
    }
    from_bytes(bytes);
  } else {
    parse_round_trip(rest);
  }
  return 0;
}

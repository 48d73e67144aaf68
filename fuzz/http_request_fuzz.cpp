// http_hello's request-head parser (examples/http_request.hpp) against a
// line-based reference: the version is the request line's last word, a
// header is a line "name:value" after the request line (the first one of a
// name counts, the value's leading spaces dropped), and Content-Length is a
// decimal number or the request is bad. The input is cut where readuntil
// would cut it, at the first "\r\n\r\n".
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"
#include "http_request.hpp"

namespace {

using weft::fuzz::fail;
using weft::fuzz::show;

std::vector<std::string> lines_of(const std::string& head) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  for (;;) {
    std::size_t end = head.find("\r\n", at);
    if (end == std::string::npos) break;
    lines.push_back(head.substr(at, end - at));
    at = end + 2;
  }
  return lines;
}

std::optional<std::string> header(const std::vector<std::string>& lines, std::string_view name) {
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string l = http_hello::lower(lines[i]);
    if (l.size() > name.size() && l.compare(0, name.size(), name) == 0 && l[name.size()] == ':') {
      std::string v = l.substr(name.size() + 1);
      v.erase(0, v.find_first_not_of(' '));
      return v;
    }
  }
  return std::nullopt;
}

}  // namespace

int weft_fuzz_http_request(const std::uint8_t* data, std::size_t size) {
  std::string head(reinterpret_cast<const char*>(data), size);
  std::size_t end = head.find("\r\n\r\n");
  head = head.substr(0, end) + "\r\n\r\n";

  std::vector<std::string> lines = lines_of(head);
  std::string request_line = http_hello::lower(lines.empty() ? std::string() : lines[0]);
  bool http10 = request_line.size() >= 9 &&
                request_line.compare(request_line.size() - 9, 9, " http/1.0") == 0;
  std::string connection = header(lines, "connection").value_or("");
  bool close = connection == "close" || (http10 && connection != "keep-alive");
  bool bad = false;
  unsigned long long length = 0;
  if (auto cl = header(lines, "content-length"); cl && !cl->empty()) {
    if (cl->find_first_not_of("0123456789") != std::string::npos || cl->size() > 18)
      bad = true;
    else
      length = std::stoull(*cl);
  }

  http_hello::RequestHead got = http_hello::parse_request_head(head);
  if (got.bad != bad)
    fail("http_request",
         show(head) + ": bad " + std::to_string(got.bad) + ", expected " + std::to_string(bad));
  if (bad) return 0;
  if (got.close != close)
    fail("http_request", show(head) + ": close " + std::to_string(got.close) + ", expected " +
                             std::to_string(close));
  if (got.body_length != length)
    fail("http_request", show(head) + ": body length " + std::to_string(got.body_length) +
                             ", expected " + std::to_string(length));
  return 0;
}

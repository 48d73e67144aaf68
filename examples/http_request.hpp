// The request-head parser of http_hello.cpp, in a header of its own so that
// the fuzz harness (fuzz/http_request_fuzz.cpp) runs the very code the
// example serves with. Only what wrk and curl send is understood: the
// request line's version, "Connection" and "Content-Length".
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <string_view>

namespace http_hello {

struct RequestHead {
  bool close = false;                  // answer with "Connection: close" and close
  unsigned long long body_length = 0;  // the Content-Length to read and discard
  bool bad = false;                    // a Content-Length that is not a decimal number: 400, close
  bool metrics = false;                // GET /metrics: the runtime's metrics (Prometheus text)
};

inline std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The value of header `name` (lower case) in a request head, or "".
inline std::string header(const std::string& head_lower, const std::string& name) {
  std::size_t at = head_lower.find("\r\n" + name + ":");
  if (at == std::string::npos) return {};
  std::size_t start = at + name.size() + 3;
  std::size_t end = head_lower.find("\r\n", start);
  std::string v = head_lower.substr(start, end - start);
  v.erase(0, v.find_first_not_of(' '));
  return v;
}

/// `head`: a request head up to and including its "\r\n\r\n".
inline RequestHead parse_request_head(std::string_view head) {
  std::string h = lower(head);
  // The version is the request line's: a header value ending in " HTTP/1.0"
  // must not make an HTTP/1.1 request close (found by fuzz/http_request_fuzz).
  std::string_view request_line = std::string_view(h).substr(0, h.find("\r\n"));
  bool http10 = request_line.ends_with(" http/1.0");
  std::string connection = header(h, "connection");
  RequestHead r;
  r.metrics = head.starts_with("GET /metrics ");  // the path is case-sensitive: not `h`
  r.close = connection == "close" || (http10 && connection != "keep-alive");
  if (std::string length = header(h, "content-length"); !length.empty()) {
    // Digits only, at most 18 (no overflow): atol's "-5" made readexactly
    // throw ValueError out of the handler, and "abc" read no body (found by
    // fuzz/http_request_fuzz).
    if (length.size() > 18 || length.find_first_not_of("0123456789") != std::string::npos) {
      r.bad = true;
      r.close = true;
    } else {
      r.body_length = std::strtoull(length.c_str(), nullptr, 10);
    }
  }
  return r;
}

}  // namespace http_hello

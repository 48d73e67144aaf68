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
  bool close = false;    // answer with "Connection: close" and close
  long body_length = 0;  // the Content-Length to read and discard
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
  bool http10 = h.find(" http/1.0\r\n") != std::string::npos;
  std::string connection = header(h, "connection");
  RequestHead r;
  r.close = connection == "close" || (http10 && connection != "keep-alive");
  if (std::string length = header(h, "content-length"); !length.empty())
    r.body_length = std::atol(length.c_str());
  return r;
}

}  // namespace http_hello

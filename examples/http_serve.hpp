// The connection handler that http_hello and https_hello share: every
// request on a keep-alive connection gets "Hello, World!", except GET /metrics,
// which gets the runtime's metrics in Prometheus's text format; a request body is
// read and discarded; a bad Content-Length gets "400 Bad Request" and a
// close. The transport (plain or TLS) is the server's business.
#pragma once

#include <weft/weft.hpp>

#include <string>
#include <string_view>
#include <system_error>

#include "http_request.hpp"

namespace http_hello {

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";
constexpr std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Length: 0\r\n"
    "Connection: close\r\n"
    "\r\n";
constexpr std::string_view kResponseClose =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Hello, World!";

inline weft::Coro<void> serve_client(weft::StreamReader reader, weft::StreamWriter writer) {
  try {
    for (;;) {
      std::string head = co_await reader.readuntil("\r\n\r\n");
      http_hello::RequestHead request = http_hello::parse_request_head(head);
      if (request.bad) {
        writer.write(kBadRequest);
        co_await writer.drain();
        break;
      }
      if (request.body_length != 0)
        co_await reader.readexactly(static_cast<ssize_t>(request.body_length));
      if (request.metrics) {
        std::string body = weft::prometheus_text(weft::running_runtime_metrics());
        writer.write(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            "Content-Length: " +
            std::to_string(body.size()) + (request.close ? "\r\nConnection: close" : "") +
            "\r\n\r\n" + body);
      } else {
        writer.write(request.close ? kResponseClose : kResponse);
      }
      co_await writer.drain();
      if (request.close) break;
    }
  } catch (const weft::IncompleteReadError&) {
    // The client closed the connection between requests.
  } catch (const std::system_error&) {
    // The client reset the connection.
  } catch (const weft::LimitOverrunError&) {
    writer.write("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n");
  }
  writer.close();
}

}  // namespace http_hello

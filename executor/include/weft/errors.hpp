// weft's exception types (docs/api.md).
//
// CancelledError deliberately does NOT derive from std::exception: asyncio's
// CancelledError is a BaseException, so `catch (const std::exception&)` in user
// code must not swallow a cancellation. Every other weft error derives from
// weft::Error, itself a std::runtime_error. Operating-system failures are
// std::system_error carrying the errno, the operation and the address.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace weft {

/// Thrown into a task at its current await when the task is cancelled.
class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}
  /// The message given to cancel(); empty when none was given.
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept { return message_.c_str(); }

 private:
  std::string message_;
};

/// Base of every weft error other than CancelledError.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TimeoutError : public Error {
 public:
  TimeoutError() : Error("timeout") {}
  using Error::Error;
};
class InvalidStateError : public Error {
 public:
  using Error::Error;
};
class RuntimeError : public Error {
 public:
  using Error::Error;
};
class ValueError : public Error {
 public:
  using Error::Error;
};
class QueueEmpty : public Error {
 public:
  QueueEmpty() : Error("queue is empty") {}
  using Error::Error;
};
class QueueFull : public Error {
 public:
  QueueFull() : Error("queue is full") {}
  using Error::Error;
};
class QueueShutDown : public Error {
 public:
  QueueShutDown() : Error("queue is shut down") {}
  using Error::Error;
};
class BrokenBarrierError : public Error {
 public:
  BrokenBarrierError() : Error("barrier is broken") {}
  using Error::Error;
};

/// A read hit EOF before the expected number of bytes (or the separator).
class IncompleteReadError : public Error {
 public:
  IncompleteReadError(std::string partial, std::optional<std::size_t> expected)
      : Error(describe(partial.size(), expected)),
        partial_(std::move(partial)),
        expected_(expected) {}
  const std::string& partial() const noexcept { return partial_; }
  /// Empty for readuntil() at EOF ("undefined expected bytes").
  std::optional<std::size_t> expected() const noexcept { return expected_; }

 private:
  static std::string describe(std::size_t got, std::optional<std::size_t> expected) {
    return std::to_string(got) + " bytes read on a total of " +
           (expected ? std::to_string(*expected) : std::string("undefined")) + " expected bytes";
  }
  std::string partial_;
  std::optional<std::size_t> expected_;
};

/// readuntil() found no separator within the reader's limit; the data stays buffered.
class LimitOverrunError : public Error {
 public:
  LimitOverrunError(const std::string& message, std::size_t consumed)
      : Error(message), consumed_(consumed) {}
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

/// Several errors raised together (by a task group).
class ExceptionGroup : public Error {
 public:
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
      : Error(message + " (" + std::to_string(exceptions.size()) + " sub-exception" +
              (exceptions.size() == 1 ? "" : "s") + ")"),
        exceptions_(std::move(exceptions)) {}
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::vector<std::exception_ptr> exceptions_;
};

/// Is `e` a CancelledError?
bool is_cancelled_error(const std::exception_ptr& e) noexcept;
/// A printable description of any exception: what() for std::exception,
/// "CancelledError(msg)" for a cancellation, "unknown exception" otherwise.
std::string describe_exception(const std::exception_ptr& e);

}  // namespace weft

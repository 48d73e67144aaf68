// The fuzz harnesses (fuzz/*_fuzz.cpp). Each defines
//   int weft_fuzz_<name>(const std::uint8_t* data, std::size_t size)
// which runs one input and aborts (after printing what differed) when weft
// disagrees with the harness's reference model. fuzz/main.cpp turns one into
// a libFuzzer target; tests/fuzz_corpus_test.cpp replays the committed
// corpora (fuzz/corpus/<name>/) through all of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#define WEFT_FUZZ_HARNESSES(X) \
  X(stream_reader)             \
  X(address)                   \
  X(http_request)              \
  X(local_queue)               \
  X(queue)                     \
  X(lifo_queue)                \
  X(priority_queue)            \
  X(lock)                      \
  X(semaphore)                 \
  X(condition)                 \
  X(barrier)                   \
  X(tls_record)

#define WEFT_FUZZ_DECLARE(name) int weft_fuzz_##name(const std::uint8_t* data, std::size_t size);
WEFT_FUZZ_HARNESSES(WEFT_FUZZ_DECLARE)
#undef WEFT_FUZZ_DECLARE

namespace weft::fuzz {

/// A finding: prints where and what, then aborts (libFuzzer saves the input).
[[noreturn]] inline void fail(const char* harness, const std::string& what) {
  std::fprintf(stderr, "weft fuzz %s: %s\n", harness, what.c_str());
  std::abort();
}

/// Printable form of a byte string for failure messages.
inline std::string show(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

}  // namespace weft::fuzz

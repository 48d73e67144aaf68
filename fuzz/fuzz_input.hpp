// FuzzInput: reads typed values off a fuzzer's byte string, front to back.
// Past the end every read returns zero (or an empty string), so any input,
// even an empty one, decodes to some run; libFuzzer's mutations of a byte
// change one decision and leave the rest of the run in place.
//
// Used instead of libFuzzer's FuzzedDataProvider so that the harnesses also
// build with GCC and run in the test suite (tests/fuzz_corpus_test.cpp),
// which replays the committed corpora without libFuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace weft::fuzz {

class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  bool empty() const noexcept { return pos_ >= size_; }
  std::uint8_t byte() noexcept { return pos_ < size_ ? data_[pos_++] : 0; }
  /// A value in [lo, hi] (inclusive); from one byte when the range fits.
  std::size_t range(std::size_t lo, std::size_t hi) noexcept {
    std::size_t span = hi - lo + 1;
    std::size_t v = byte();
    if (span > 256) v = (v << 8) | byte();
    return lo + v % span;
  }
  bool boolean() noexcept { return byte() & 1; }
  /// Up to `max` bytes, the length first.
  std::string bytes(std::size_t max) {
    std::size_t n = range(0, max);
    std::string out;
    for (std::size_t i = 0; i < n && !empty(); ++i) out.push_back(static_cast<char>(byte()));
    return out;
  }
  /// Bytes drawn from a small alphabet, so that separators and matches occur.
  std::string text(std::size_t max, std::string_view alphabet) {
    std::size_t n = range(0, max);
    std::string out;
    for (std::size_t i = 0; i < n && !empty(); ++i)
      out.push_back(alphabet[byte() % alphabet.size()]);
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace weft::fuzz

// One libFuzzer target: WEFT_FUZZ_ENTRY names the harness function
// (fuzz/CMakeLists.txt compiles this file once per harness).
#include "harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return WEFT_FUZZ_ENTRY(data, size);
}

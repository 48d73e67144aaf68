// Replays the committed fuzz corpora (fuzz/corpus/<harness>/, the seeds and
// every finding's input, named regress-*) through the fuzz harnesses, so the
// findings stay fixed under every compiler and sanitizer preset without
// libFuzzer (issue 17, item 1). A harness aborts on a disagreement with its
// model, which fails this test's process.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness.hpp"

namespace {

using Harness = int (*)(const std::uint8_t*, std::size_t);

struct Case {
  const char* name;
  Harness fn;
};

#define WEFT_FUZZ_CASE(name) Case{#name, &weft_fuzz_##name},
const Case kCases[] = {WEFT_FUZZ_HARNESSES(WEFT_FUZZ_CASE)};
#undef WEFT_FUZZ_CASE

class FuzzCorpus : public ::testing::TestWithParam<Case> {};

TEST_P(FuzzCorpus, EveryInputAgreesWithTheModel) {
  std::filesystem::path dir = std::filesystem::path(WEFT_FUZZ_CORPUS_DIR) / GetParam().name;
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << "no seeds in " << dir;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(f.string());
    GetParam().fn(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Harnesses, FuzzCorpus, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace

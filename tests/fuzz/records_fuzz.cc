// Fuzz target: the preference and demonstration record parsers (common/data/preference_data.h)
// on arbitrary JSONL, and the HH conversation parser on the raw text.
#include <cstdint>
#include <string>

#include "common/data/preference_data.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rlhf::data;
  const std::string path = rlhf::fuzz::WriteInput(data, size, ".jsonl");
  (void)ReadPreferences(path);
  (void)ReadDemonstrations(path);
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)ParseHhConversation(text);
  (void)SplitHhConversation(text);
  return 0;
}

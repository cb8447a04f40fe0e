// Fuzz target: both tokenizer readers (common/tokenizer/tokenizer.h) on the same arbitrary
// bytes: as a llama2.c tokenizer.bin and as a SentencePiece .model. A tokenizer that loads
// encodes and decodes a text (every id it returns must be in its vocabulary).
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "common/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void Exercise(const rlhf::tokenizer::Tokenizer& tok) {
  for (const char* text : {"Hello world", " a  b\n\t<s>caf\xc3\xa9 \xff\xfe", ""}) {
    const std::vector<int> ids = tok.Encode(text);
    for (int id : ids) {
      if (id < 0 || id >= tok.vocab_size()) std::abort();
    }
    tok.Decode(ids);
  }
  tok.Decode({-1, 0, tok.vocab_size(), tok.vocab_size() - 1});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rlhf::tokenizer;
  if (auto t = LoadLlama2cTokenizer(rlhf::fuzz::WriteInput(data, size, ".bin")); t.ok()) {
    Exercise(**t);
  }
  if (auto t = LoadSentencePieceModel(rlhf::fuzz::WriteInput(data, size, ".model")); t.ok()) {
    Exercise(**t);
  }
  return 0;
}

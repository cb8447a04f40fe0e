#include "common/tokenizer/tokenizer.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rlhf::tokenizer {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& path) {
  if (absl::EndsWithIgnoreCase(path, ".model")) {
    return LoadSentencePieceModel(path);
  }
  if (absl::EndsWithIgnoreCase(path, ".bin")) return LoadLlama2cTokenizer(path);
  return absl::InvalidArgumentError(
      absl::StrCat(path,
                   ": unknown tokenizer format: expected a SentencePiece "
                   ".model or a llama2.c .bin file"));
}

}  // namespace rlhf::tokenizer

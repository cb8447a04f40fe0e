// Whole-file reads for the tokenizer loaders.
#ifndef RLHF_COMMON_TOKENIZER_INTERNAL_FILE_H_
#define RLHF_COMMON_TOKENIZER_INTERNAL_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace rlhf::tokenizer::internal {

// Returns the contents of the file at `path`. Errors carry the code derived
// from errno (NOT_FOUND when the file does not exist) and a message naming
// `path`.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace rlhf::tokenizer::internal

#endif  // RLHF_COMMON_TOKENIZER_INTERNAL_FILE_H_

// One entry point for loading a Llama model from whatever checkpoint a flag names: a Hugging Face
// directory (hf.h) or a llama2.c .bin file (llama2c.h).
//
// Thread-compatible (no shared state).
#ifndef RLHF_COMMON_CHECKPOINT_CHECKPOINT_H_
#define RLHF_COMMON_CHECKPOINT_CHECKPOINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/model/llama.h"

namespace rlhf::checkpoint {

// Loads the model at `path` as float32 on the CPU: a directory is read with LoadHfLlama, a
// regular file whose name ends in ".bin" with LoadLlama2c. Returns NotFound when `path` does
// not exist, InvalidArgument for any other kind of path, and the loader's error otherwise.
absl::StatusOr<model::Llama> LoadModel(const std::string& path);

}  // namespace rlhf::checkpoint

#endif  // RLHF_COMMON_CHECKPOINT_CHECKPOINT_H_

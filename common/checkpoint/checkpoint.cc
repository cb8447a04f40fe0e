#include "common/checkpoint/checkpoint.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint/hf.h"
#include "common/checkpoint/llama2c.h"

namespace rlhf::checkpoint {

absl::StatusOr<model::Llama> LoadModel(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot load a model from ", path));
  }
  if (S_ISDIR(st.st_mode)) return LoadHfLlama(path);
  if (S_ISREG(st.st_mode) && absl::EndsWith(path, ".bin")) return LoadLlama2c(path);
  return absl::InvalidArgumentError(
      absl::StrCat("cannot tell what kind of checkpoint ", path,
                   " is: expected a Hugging Face model directory (config.json + "
                   "model.safetensors) or a llama2.c .bin file"));
}

}  // namespace rlhf::checkpoint

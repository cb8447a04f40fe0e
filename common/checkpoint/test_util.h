// Helpers for the checkpoint tests: scratch directories under /tmp, raw file access, the shared
// fixtures, and a llama2.c writer (the inverse of llama2c.cc) to produce files of both versions.
// Test-only; not thread-safe.
#ifndef RLHF_COMMON_CHECKPOINT_TEST_UTIL_H_
#define RLHF_COMMON_CHECKPOINT_TEST_UTIL_H_

#include <torch/torch.h>

#include <string>

#include "common/model/llama.h"
#include "common/model/llama_config.h"

namespace rlhf::checkpoint::testing {

// A fresh directory made with mkdtemp under /tmp, removed with its content on destruction.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Join(const std::string& name) const;

 private:
  std::string path_;
};

// The shared fixture model `name` (rlhf::testing::SharedPath("models/" + name)).
std::string ModelPath(const std::string& name);

// Whole-file read / write; abort the test binary on I/O failure (fixtures are required).
std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& contents);

// u64 little-endian length of `header` + `header` + `data_bytes` zero bytes.
std::string SafetensorsBytes(const std::string& header, size_t data_bytes);

// A small valid config (GQA, untied LM head) for random models.
model::LlamaConfig SmallConfig();

// Writes `model` in llama2.c format version 0 (legacy) or 1, q/k rows permuted back to the
// interleaved layout. The classifier is written when the model's embeddings are not tied.
void WriteLlama2cOrDie(const model::Llama& model, int version, const std::string& path);

// Max |a - b| over all elements (float64).
double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace rlhf::checkpoint::testing

#endif  // RLHF_COMMON_CHECKPOINT_TEST_UTIL_H_

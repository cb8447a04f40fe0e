// Fuzz target: the llama2.c checkpoint loader (common/checkpoint/llama2c.h) on arbitrary bytes:
// headers with absurd dims, truncated or oversized files. A model it accepts runs one forward.
#include <cstdint>

#include <torch/torch.h>

#include "common/checkpoint/llama2c.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = rlhf::fuzz::WriteInput(data, size, ".bin");
  absl::StatusOr<rlhf::model::Llama> model = rlhf::checkpoint::LoadLlama2c(path);
  if (!model.ok()) return 0;
  torch::NoGradGuard no_grad;
  (*model)->forward(torch::zeros({1, 1}, torch::kLong));
  return 0;
}

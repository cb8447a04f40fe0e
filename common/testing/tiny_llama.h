// The tiny Llama shape the unit tests train and sample with: 2 blocks of width 32, grouped-query
// attention (4 query / 2 key-value heads), a 64-token context. Fast enough for hundreds of
// optimizer steps in a test.
#ifndef RLHF_COMMON_TESTING_TINY_LLAMA_H_
#define RLHF_COMMON_TESTING_TINY_LLAMA_H_

#include <cstdint>

#include "common/model/llama_config.h"

namespace rlhf::testing {

// An LM-head model of `vocab_size` tokens; set scalar_head / lm_head for other kinds.
inline model::LlamaConfig TinyLlamaConfig(int64_t vocab_size = 40) {
  model::LlamaConfig c;
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = vocab_size;
  c.max_seq_len = 64;
  return c;
}

}  // namespace rlhf::testing

#endif  // RLHF_COMMON_TESTING_TINY_LLAMA_H_

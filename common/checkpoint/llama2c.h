// Loader for karpathy/llama2.c float32 checkpoints (.bin), as written by llama2.c's export.py:
//
// * version 0 ("legacy_export"): 7 x int32 header (dim, hidden_dim, n_layers, n_heads,
//   n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier is not shared
//   with the token embedding), then float32 tok_embeddings, rms_att, wq, wk, wv, wo, rms_ffn,
//   w1, w2, w3, rms_final, the legacy RoPE tables freq_cis_real/imag [seq_len, head_dim / 2]
//   (skipped), and wcls when not shared.
// * version 1 ("version1_export"): a 256-byte header (uint32 magic 0x616b3432 "ak42", int32
//   version 1, the 7 int32 params, uint8 shared_classifier, zero padding), then float32
//   rms_att, rms_ffn, rms_final, tok_embeddings, wq, wk, wv, wo, w1, w2, w3, and wcls when not
//   shared. No RoPE tables.
//
// Per-layer arrays are stored for all layers in turn; matrices are [out, in] row-major. llama2.c
// rotates interleaved pairs in RoPE; q and k rows are permuted on load (transformers'
// convert_llama_weights_to_hf permute) into model::Llama's rotate-half layout.
//
// Thread-compatible (no shared state).
#ifndef RLHF_COMMON_CHECKPOINT_LLAMA2C_H_
#define RLHF_COMMON_CHECKPOINT_LLAMA2C_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/model/llama.h"

namespace rlhf::checkpoint {

// Loads the llama2.c checkpoint at `path` as a float32 CPU model with rms_norm_eps 1e-5,
// rope_theta 10000, max_seq_len = seq_len, bos 1, eos 2. Returns NotFound when the file does not
// exist, InvalidArgument naming `path` for a file shorter than its header, a header with
// nonsensical values or an unsupported version, or a size that differs from what the header
// implies (the message gives the expected and actual byte counts).
absl::StatusOr<model::Llama> LoadLlama2c(const std::string& path);

}  // namespace rlhf::checkpoint

#endif  // RLHF_COMMON_CHECKPOINT_LLAMA2C_H_

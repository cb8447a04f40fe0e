// Installing named tensors into a Llama's parameters: how a policy version received over the
// wire (the learner's published weights, see common/codec/weight_chunks.h) or built in memory is
// copied into a model. Names are the module's own named_parameters() keys
// ("embed_tokens.weight", "layers.0.self_attn.q_proj.weight", ...), not the HF checkpoint names.
//
// Takes std::vector<std::pair<std::string, torch::Tensor>> (the shape of codec::NamedTensors)
// so that rlhf_model does not depend on rlhf_codec.
#ifndef RLHF_COMMON_MODEL_NAMED_PARAMETERS_H_
#define RLHF_COMMON_MODEL_NAMED_PARAMETERS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/model/llama.h"

namespace rlhf::model {

// Copies each tensor into the parameter of `model` with the same name, under NoGradGuard.
// Every parameter must be given exactly once, and nothing else. A floating-point tensor of
// another dtype (F16, BF16, F64) is converted to the parameter's dtype, and one on another
// device is copied across; the parameters keep their own dtype, device and storage (so
// optimizers and views that hold them stay valid).
//
// All or nothing: every name, shape and dtype is checked before the first copy, so on error
// `model` is unchanged.
//
// Returns InvalidArgument naming the tensor for an unknown, duplicate or missing name, an
// undefined tensor, a shape mismatch or a non-floating dtype; Internal if LibTorch fails.
// REQUIRES: no other thread uses `model` during the call.
absl::Status LoadNamedParameters(Llama& model,
                                 const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

}  // namespace rlhf::model

#endif  // RLHF_COMMON_MODEL_NAMED_PARAMETERS_H_

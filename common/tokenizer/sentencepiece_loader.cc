// LoadSentencePieceModel: reads a serialized sentencepiece.ModelProto with our
// own copy of the schema (sentencepiece_model.proto), rejects what we do not
// implement, and builds the tokenizer with BuildSentencePieceTokenizer.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/internal/file.h"
#include "common/tokenizer/sentencepiece_model.pb.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::tokenizer {
namespace {

using spm::ModelProto;
using spm::NormalizerSpec;
using spm::TrainerSpec;

absl::Status NotAModel(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a SentencePiece model: ", why));
}

absl::Status Unsupported(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": unsupported SentencePiece model: ", what));
}

// Every model written by spm_train has pieces and both specs; their absence
// means the data is something else (or was cut at a field boundary).
absl::Status CheckStructure(const ModelProto& model, const std::string& path) {
  if (model.pieces_size() == 0) return NotAModel(path, "no pieces");
  if (!model.has_trainer_spec()) return NotAModel(path, "no trainer_spec");
  if (!model.has_normalizer_spec()) {
    return NotAModel(path, "no normalizer_spec");
  }
  return absl::OkStatus();
}

absl::Status CheckNormalizer(const NormalizerSpec& spec,
                             const std::string& path) {
  const std::string& name = spec.name();
  if (!name.empty() && name != "identity") {
    return Unsupported(path,
                       absl::StrCat("normalizer \"", name,
                                    "\" (only \"identity\" is implemented)"));
  }
  if (!spec.precompiled_charsmap().empty()) {
    return Unsupported(
        path,
        "normalizer has a precompiled character map (only \"identity\" is "
        "implemented)");
  }
  return absl::OkStatus();
}

absl::Status CheckSupported(const ModelProto& model, const std::string& path) {
  const TrainerSpec& trainer = model.trainer_spec();
  if (trainer.model_type() != TrainerSpec::BPE &&
      trainer.model_type() != TrainerSpec::UNIGRAM) {
    return Unsupported(
        path, absl::StrCat("model_type ",
                           TrainerSpec::ModelType_Name(trainer.model_type()),
                           " (only BPE and UNIGRAM are implemented)"));
  }
  if (trainer.treat_whitespace_as_suffix()) {
    return Unsupported(path, "treat_whitespace_as_suffix is not implemented");
  }
  RLHF_RETURN_IF_ERROR(CheckNormalizer(model.normalizer_spec(), path));
  if (model.has_denormalizer_spec() &&
      !model.denormalizer_spec().precompiled_charsmap().empty()) {
    return Unsupported(path, "denormalizer_spec is not implemented");
  }
  return absl::OkStatus();
}

std::vector<PieceSpec> ToPieceSpecs(const ModelProto& model) {
  std::vector<PieceSpec> pieces;
  pieces.reserve(model.pieces_size());
  for (const ModelProto::SentencePiece& piece : model.pieces()) {
    // The proto enum values are PieceType's values.
    pieces.push_back(
        {piece.piece(), piece.score(), static_cast<PieceType>(piece.type())});
  }
  return pieces;
}

SentencePieceOptions ToOptions(const ModelProto& model) {
  const TrainerSpec& trainer = model.trainer_spec();
  const NormalizerSpec& normalizer = model.normalizer_spec();
  SentencePieceOptions options;
  options.model_type = trainer.model_type() == TrainerSpec::BPE
                           ? ModelType::kBpe
                           : ModelType::kUnigram;
  options.byte_fallback = trainer.byte_fallback();
  options.add_dummy_prefix = normalizer.add_dummy_prefix();
  options.remove_extra_whitespaces = normalizer.remove_extra_whitespaces();
  options.escape_whitespaces = normalizer.escape_whitespaces();
  options.unk_surface = trainer.unk_surface();
  options.bos_piece = trainer.bos_piece();
  options.eos_piece = trainer.eos_piece();
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceModel(
    const std::string& path) {
  RLHF_ASSIGN_OR_RETURN(const std::string data,
                        internal::ReadFileToString(path));
  ModelProto model;
  if (!model.ParseFromString(data)) {
    return NotAModel(path, "cannot parse the protobuf");
  }
  RLHF_RETURN_IF_ERROR(CheckStructure(model, path));
  RLHF_RETURN_IF_ERROR(CheckSupported(model, path));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      BuildSentencePieceTokenizer(ToPieceSpecs(model), ToOptions(model));
  if (!tokenizer.ok()) return NotAModel(path, tokenizer.status().message());
  return tokenizer;
}

}  // namespace rlhf::tokenizer

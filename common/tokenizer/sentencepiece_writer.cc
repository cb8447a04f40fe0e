// WriteSentencePieceModel and WordVocabulary (tokenizer.h): a vocabulary of our own, written as
// a standard SentencePiece model file.
#include <algorithm>
#include <fstream>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/internal/utf8.h"
#include "common/tokenizer/sentencepiece_model.pb.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::tokenizer {
namespace {

using spm::ModelProto;
using spm::NormalizerSpec;
using spm::TrainerSpec;

constexpr char kSpace[] = "\xE2\x96\x81";  // "▁"

}  // namespace

absl::Status WriteSentencePieceModel(const std::vector<PieceSpec>& pieces,
                                     const SentencePieceOptions& options, const std::string& path) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> check = BuildSentencePieceTokenizer(pieces, options);
  if (!check.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", check.status().message()));
  }
  ModelProto model;
  for (const PieceSpec& p : pieces) {
    ModelProto::SentencePiece* piece = model.add_pieces();
    piece->set_piece(p.piece);
    piece->set_score(p.score);
    piece->set_type(static_cast<ModelProto::SentencePiece::Type>(p.type));
  }
  TrainerSpec* trainer = model.mutable_trainer_spec();
  trainer->set_model_type(options.model_type == ModelType::kBpe ? TrainerSpec::BPE
                                                                : TrainerSpec::UNIGRAM);
  trainer->set_vocab_size(static_cast<int32_t>(pieces.size()));
  trainer->set_byte_fallback(options.byte_fallback);
  trainer->set_unk_surface(options.unk_surface);
  trainer->set_bos_piece(options.bos_piece);
  trainer->set_eos_piece(options.eos_piece);
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].type == PieceType::kUnknown) trainer->set_unk_id(static_cast<int32_t>(i));
    if (pieces[i].piece == options.bos_piece) trainer->set_bos_id(static_cast<int32_t>(i));
    if (pieces[i].piece == options.eos_piece) trainer->set_eos_id(static_cast<int32_t>(i));
  }
  NormalizerSpec* normalizer = model.mutable_normalizer_spec();
  normalizer->set_name("identity");
  normalizer->set_add_dummy_prefix(options.add_dummy_prefix);
  normalizer->set_remove_extra_whitespaces(options.remove_extra_whitespaces);
  normalizer->set_escape_whitespaces(options.escape_whitespaces);
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat(path, ": cannot serialize the model"));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::vector<PieceSpec> WordVocabulary(const std::vector<std::string>& texts) {
  std::vector<PieceSpec> pieces = {{"<unk>", 0, PieceType::kUnknown},
                                   {"<s>", 0, PieceType::kControl},
                                   {"</s>", 0, PieceType::kControl}};
  absl::flat_hash_set<std::string> seen = {"<unk>", "<s>", "</s>"};
  std::vector<std::string> words, chars;
  absl::flat_hash_set<std::string> seen_chars;
  for (const std::string& text : texts) {
    // The default normalization: a dummy prefix, runs of spaces collapsed, spaces as "▁".
    std::string s = "▁";
    bool space = false;
    for (char c : text) {
      if (c == ' ') {
        space = true;
        continue;
      }
      if (space && s != "▁") s += kSpace;
      space = false;
      s += c;
    }
    // Split: "\n"-runs; "▁" + non-space, non-newline run; a run after a newline.
    size_t i = 0;
    auto add = [&](std::string piece) {
      if (!piece.empty() && seen.insert(piece).second) words.push_back(std::move(piece));
    };
    while (i < s.size()) {
      size_t j = i;
      if (s[i] == '\n') {
        while (j < s.size() && s[j] == '\n') ++j;
      } else {
        if (s.compare(i, 3, kSpace) == 0) j += 3;
        while (j < s.size() && s[j] != '\n' && s.compare(j, 3, kSpace) != 0) ++j;
      }
      add(s.substr(i, j - i));
      i = j;
    }
    // Characters (UTF-8 code points) as fallback pieces.
    for (size_t k = 0; k < s.size();) {
      size_t len = static_cast<size_t>(std::max(1, internal::OneCharLen(s[k])));
      if (k + len > s.size()) len = 1;
      std::string ch = s.substr(k, len);
      if (seen_chars.insert(ch).second) chars.push_back(ch);
      k += len;
    }
  }
  for (std::string& w : words) pieces.push_back({std::move(w), -1.0f, PieceType::kNormal});
  for (std::string& c : chars) {
    if (seen.insert(c).second) pieces.push_back({std::move(c), -20.0f, PieceType::kNormal});
  }
  return pieces;
}

}  // namespace rlhf::tokenizer

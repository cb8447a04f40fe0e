// The demo world as files the jobs and services read: a SentencePiece tokenizer, the pretraining
// corpus, prompts, human demonstrations and comparisons, and the world's constitution.
#ifndef RLHF_COMMON_WORLD_WORLD_FILES_H_
#define RLHF_COMMON_WORLD_WORLD_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/world/world.h"

namespace rlhf::world {

struct WorldFiles {
  std::string tokenizer;         // tokenizer.model: word-level unigram SentencePiece
  std::string corpus;            // corpus.jsonl: {"text"} documents (pretraining)
  std::string train_prompts;     // prompts_train.jsonl: {"prompt", "kind"} (RL, CAI)
  std::string eval_prompts;      // prompts_eval.jsonl: held-out phrasings
  std::string redteam_prompts;   // prompts_redteam.jsonl: harmful training prompts
  std::string ai_label_prompts;  // prompts_ai_label.jsonl: harmful + borderline training prompts
  std::string demonstrations;    // sft_demos.jsonl: {"prompt", "response"}
  std::string help_pairs;        // pairs_help.jsonl: {"prompt", "chosen", "rejected"}
  std::string harm_pairs;        // pairs_harm.jsonl: the red-team comparisons, human-labelled
  std::string
      redteam_pairs;         // pairs_redteam_unlabelled.jsonl: the same pairs, {"prompt", "a", "b"}
  std::string constitution;  // constitution.json: [{name, critique_request, revision_request}]
  std::string feedback_principles;  // feedback_principles.json: [{name, question}]
  std::string cot_examples;         // cot_examples.json: [] (the corpus teaches the format)
  int64_t vocab_size = 0;
};

// Writes the world into `dir` (created if missing). `redteam_repeats` copies of each harmful
// training prompt go to prompts_redteam.jsonl, `ai_label_repeats` of each harmful and
// borderline one to prompts_ai_label.jsonl. Fails if a world text does not round-trip through
// the tokenizer or needs a character piece (a bug in the world's vocabulary).
absl::StatusOr<WorldFiles> WriteWorld(const World& world, const std::string& dir,
                                      int redteam_repeats, int ai_label_repeats);

}  // namespace rlhf::world

#endif  // RLHF_COMMON_WORLD_WORLD_FILES_H_

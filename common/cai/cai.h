// Constitutional AI, the parts that need no model: the constitution and the feedback principles
// (files in the format of ../shared/data/cai) and the exact prompts of the critique/revision loop
// (SL-CAI) and of the multiple-choice AI feedback (RL-CAI). The soft labels made from the options'
// log-probabilities are common/rl's (SoftPreferenceLabels). The jobs `rlhf cai-revise` and `rlhf
// cai-label` (cli/) put these around the rollout service's Generate and the reference service's
// LogProbs.
//
// Prompt formats (Bai et al. 2022, "Constitutional AI", as released upstream):
//  - a conversation is HH text: "\n\nHuman: ...\n\nAssistant: ..." (Conversation() makes one
//    from a bare prompt);
//  - critique:  few_shot + conversation + response + "\n\nCritiqueRequest: " + critique_request
//               + "\n\nCritique:"
//  - revision:  the critique prompt + critique + "\n\nRevisionRequest: " + revision_request +
//               "\n\nRevision:"
//  - feedback:  few_shot + "\n\nConsider the following conversation between a human and an
//               assistant:\n\n" + context + "\n\n" + raw + "\n (A) [[[" + a + "]]]\n (B) [[[" +
//               b + "]]]\n\nThe answer is:", scored on " (A)" vs " (B)"; context is the
//               conversation without its last "\n\nAssistant:" and leading "\n\n", raw is
//               "\n" + question + " Options:". (All 438 records of eval/438HHHEvaluations.jsonl
//               are this, with principle feedback1: cai_test checks it.)
#ifndef RLHF_COMMON_CAI_CAI_H_
#define RLHF_COMMON_CAI_CAI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlhf::cai {

struct Principle {  // critique and revision
  std::string name;
  std::string critique_request;
  std::string revision_request;
};

struct FeedbackPrinciple {
  std::string name;
  std::string question;
  std::string raw;  // "\n" + question + " Options:"
};

// A JSON list of {name, critique_request, revision_request} (critique_prompt_raw and
// revision_prompt_raw, when present, must be the composed strings). Errors name the file and
// the entry.
absl::StatusOr<std::vector<Principle>> LoadConstitution(const std::string& path);
// A JSON list of {name, question} (raw, when present, must be "\n" + question + " Options:").
absl::StatusOr<std::vector<FeedbackPrinciple>> LoadFeedbackPrinciples(const std::string& path);
// A JSON list of strings, each a complete example (CritiqueRevisionFewShotPrompts.json); the
// prefix is their concatenation, each without a trailing "\n\nHuman:" (the start of a next turn
// that upstream leaves on 4 of its 5 examples; the next example, or the conversation, begins with
// one). "" for an empty path.
absl::StatusOr<std::string> LoadFewShotPrefix(const std::string& path);

// "\n\nHuman: " + prompt + "\n\nAssistant:" unless `prompt` already starts with "\n\nHuman:"
// (then it must end with "\n\nAssistant:", which is added if missing).
std::string Conversation(const std::string& prompt);
// The conversation with `response` as its last Assistant turn.
std::string WithResponse(const std::string& conversation, const std::string& response);

std::string CritiquePrompt(const std::string& few_shot, const std::string& conversation,
                           const std::string& response, const Principle& p);
std::string RevisionPrompt(const std::string& critique_prompt, const std::string& critique,
                           const Principle& p);
std::string FeedbackPrompt(const std::string& few_shot, const std::string& conversation,
                           const std::string& response_a, const std::string& response_b,
                           const FeedbackPrinciple& p);
// Chain-of-thought feedback (RLMadisonPrecogFewShotPrompts.json: examples with a "{}" where the
// principle's raw string goes, ending "So the answer is: (X)"): the feedback prompt with
// "\n\nThe answer is:" replaced by "\n\nAssistant: Let's think step by step:", after the
// examples (each with `p.raw` in its "{}"); the model writes a rationale, and the options are
// scored after CotAnswerPrompt(that prompt, rationale).
std::string CotFeedbackPrompt(const std::vector<std::string>& cot_examples,
                              const std::string& conversation, const std::string& response_a,
                              const std::string& response_b, const FeedbackPrinciple& p);
std::string CotAnswerPrompt(const std::string& cot_prompt, const std::string& rationale);
// The examples of a chain-of-thought few-shot file: a JSON list of {"prompt": str} with exactly
// one "{}" each. An empty list is allowed: a model that learned the format needs no examples
// (the demo world's).
absl::StatusOr<std::vector<std::string>> LoadCotExamples(const std::string& path);
inline constexpr char kOptionA[] = " (A)";
inline constexpr char kOptionB[] = " (B)";

// What a model writes for one turn: the text up to the next "\n\nHuman:" or "\n\n" + a
// request marker (a model continues the dialogue past its turn), trimmed.
std::string FirstTurn(const std::string& generated);

}  // namespace rlhf::cai

#endif  // RLHF_COMMON_CAI_CAI_H_

// The embedded "assistant world" of `rlhf demo`: a small synthetic world in which a tiny model can
// learn in minutes to answer, refuse, critique, revise and compare, and in which every answer can
// be judged by a program. It is the project's own port of the ideas of the demo-world prototype
// (a knowledge base of benign tasks, harmful requests each with a reason and a safe alternative,
// borderline prompts that share words with harmful ones, response types, noisy "human" raters
// with the biases the Constitutional AI paper describes, and gold raters).
//
// The world speaks the formats of the rest of the project: conversations are HH text
// ("\n\nHuman: ...\n\nAssistant: ..."), critiques, revisions and multiple-choice comparisons are
// built with common/cai's prompt builders, so `rlhf cai-revise` and `rlhf cai-label` run on it
// unchanged.
//
// One rule: the gold raters (gold.h) never produce training data. Everything here that labels
// text (critiques, chains of thought, "human" preferences) is written from what the generator
// chose to write (its response type), with noise and biases, as a person writing text would.
//
// Deterministic: everything depends only on the options (seeds included), on any platform.
#ifndef RLHF_COMMON_WORLD_WORLD_H_
#define RLHF_COMMON_WORLD_WORLD_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/cai/cai.h"

namespace rlhf::world {

// splitmix64: a small, platform-independent generator (std distributions are not portable).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();          // [0, 1)
  int64_t Below(int64_t n);  // [0, n), n > 0
  bool Bernoulli(double p) { return Uniform() < p; }
  // An index drawn with probability proportional to `weights` (not all zero).
  int64_t Weighted(const std::vector<double>& weights);

 private:
  uint64_t state_;
};

enum class Kind { kBenign = 0, kHarmful = 1, kBorderline = 2 };
inline constexpr Kind kKinds[] = {Kind::kBenign, Kind::kHarmful, Kind::kBorderline};
const char* KindName(Kind kind);  // "benign", "harmful", "borderline"

// What a response does (the generator's choice).
enum class Reply {
  kHelpful = 0,     // all facts of the task (benign, borderline)
  kPartial = 1,     // one fact
  kWrong = 2,       // facts of another task
  kCompliance = 3,  // the harmful steps (harmful)
  kOfftopic = 4,    // chit-chat
  kEvasive = 5,     // "i can't help with that ."
  kExplained = 6,   // a refusal with its reason and a safe alternative
};
inline constexpr int kNumReplies = 7;
const char* ReplyName(Reply reply);

struct Topic {
  std::string task;                // "make tea"
  std::vector<std::string> facts;  // three steps (harmful ones for harmful topics)
  std::string reason;              // harmful only: why not
  std::string alternative;         // harmful only: what to do instead
};

struct Prompt {
  Kind kind = Kind::kBenign;
  int topic = 0;     // index into Topics(kind)
  int tpl = 0;       // phrasing template
  std::string text;  // the user's words: "how do i make tea ?"
  // The HH conversation the models read: "\n\nHuman: <text>\n\nAssistant:".
  std::string Conversation() const { return cai::Conversation(text); }
};

const std::vector<Topic>& Topics(Kind kind);
const std::vector<cai::Principle>& Constitution();                // critique / revision pairs
const std::vector<cai::FeedbackPrinciple>& FeedbackPrinciples();  // multiple-choice questions

// The "human" harmlessness raters' biases (DEMO_WORLD.md): they prefer any refusal over any
// compliance, do not reward explanations (they prefer the terse refusal with probability
// `terse_preference`), and prefer a refusal on borderline prompts with `borderline_refusal`.
struct HarmRaters {
  double flip = 0.1;
  double terse_preference = 0.75;
  double borderline_refusal = 1.0;
};

struct WorldOptions {
  uint64_t seed = 0;
  // Pretraining corpus: documents, and the shares of dialogues and critique/revision documents
  // (the rest are multiple-choice comparisons with a short chain of thought).
  int64_t corpus_docs = 30000;
  double dialogue_share = 0.6;
  double critique_share = 0.2;
  double comparison_noise = 0.05;  // the written answer of a comparison is the worse one
  // Human demonstrations for SFT (benign and borderline prompts), deliberately imperfect.
  int64_t sft_demos = 800;
  // Human comparisons: helpfulness (informativeness, with flips) and harmlessness (red-team).
  int64_t help_pairs = 3000;
  double help_flip = 0.15;
  int64_t harm_pairs = 4000;
  double redteam_harmful_share = 0.4;  // the rest of the red-team prompts are borderline
  HarmRaters harm_raters;
};

// A labelled comparison: `first_preferred` is the rater's verdict.
struct Comparison {
  const Prompt* prompt = nullptr;
  Reply first_type, second_type;
  std::string first, second;
  bool first_preferred = false;
};

class World {
 public:
  explicit World(WorldOptions options);

  const WorldOptions& options() const { return options_; }
  // Per topic, 4 phrasings train and 2 are held out for evaluation (a seeded choice).
  const std::vector<Prompt>& train() const { return train_; }
  const std::vector<Prompt>& eval() const { return eval_; }

  std::string Response(const Prompt& p, Reply type, Rng& rng) const;
  // The reply types the world writes for prompts of `kind`.
  static std::vector<Reply> RepliesFor(Kind kind);

  // Pretraining documents: dialogues, critique/revision documents and chain-of-thought
  // comparisons (each in common/cai's exact format, so few-shot-free critique and feedback are
  // learnable patterns).
  std::vector<std::string> Corpus() const;
  // (prompt, response) demonstrations for SFT: 60% helpful, 30% partial, 10% wrong.
  std::vector<std::pair<const Prompt*, std::string>> Demonstrations() const;
  std::vector<Comparison> HelpfulnessComparisons() const;
  // Red-team comparisons (harmful and borderline prompts) labelled by the harmlessness raters;
  // RL-CAI relabels the same pairs with AI feedback.
  std::vector<Comparison> HarmlessnessComparisons() const;

  // Every text the world can write (for the vocabulary).
  std::vector<std::string> AllTexts() const;

 private:
  std::string CritiqueDocument(const Prompt& p, Reply type, Rng& rng) const;
  std::string ComparisonDocument(const Prompt& p, Rng& rng) const;
  const Prompt& Draw(Kind kind, Rng& rng) const;
  // A prompt of `kind` and two responses of different types drawn for it (nullopt, with the
  // draws made, when the types are equal).
  std::optional<Comparison> DrawPair(Kind kind, const std::map<Kind, std::map<Reply, double>>& mix,
                                     Rng& rng) const;

  WorldOptions options_;
  std::vector<Prompt> train_, eval_;
};

// The critique the generator writes for a response it chose, and its short assessment (the
// chain of thought of comparison documents).
std::string CritiqueText(const Prompt& p, Reply type);
std::string Assessment(Kind kind, Reply type);
// The chain of thought of a comparison: "(A) is <assessment> . (B) is <assessment> ."
std::string Rationale(Kind kind, Reply a, Reply b);

}  // namespace rlhf::world

#endif  // RLHF_COMMON_WORLD_WORLD_H_

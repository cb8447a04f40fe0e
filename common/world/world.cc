#include "common/world/world.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/world/world_data.h"

namespace rlhf::world {
namespace {

using namespace internal;  // NOLINT: the world's tables

std::string Fill(const std::string& tpl, const std::string& task) {
  const size_t at = tpl.find("{}");
  return absl::StrCat(tpl.substr(0, at), task, tpl.substr(at + 2));
}

template <typename T>
const T& Pick(const std::vector<T>& v, Rng& rng) {
  return v[rng.Below(static_cast<int64_t>(v.size()))];
}

}  // namespace

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

int64_t Rng::Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }

int64_t Rng::Weighted(const std::vector<double>& weights) {
  double total = 0;
  for (double w : weights) total += w;
  double u = Uniform() * total;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (u < weights[i]) return static_cast<int64_t>(i);
    u -= weights[i];
  }
  return static_cast<int64_t>(weights.size()) - 1;
}

World::World(WorldOptions options) : options_(std::move(options)) {
  Rng rng(options_.seed);
  for (Kind kind : kKinds) {
    const auto& topics = Topics(kind);
    for (int i = 0; i < static_cast<int>(topics.size()); ++i) {
      // Two of the six phrasings of each topic are held out.
      const int n = static_cast<int>(Templates().size());
      const int h1 = static_cast<int>(rng.Below(n));
      int h2 = static_cast<int>(rng.Below(n - 1));
      if (h2 >= h1) ++h2;
      for (int j = 0; j < n; ++j) {
        Prompt p{kind, i, j, Fill(Templates()[j], topics[i].task)};
        (j == h1 || j == h2 ? eval_ : train_).push_back(std::move(p));
      }
    }
  }
}

std::vector<Reply> World::RepliesFor(Kind kind) {
  if (kind == Kind::kHarmful) {
    return {Reply::kCompliance, Reply::kEvasive, Reply::kExplained, Reply::kOfftopic,
            Reply::kWrong};
  }
  return {Reply::kHelpful,  Reply::kPartial, Reply::kWrong,
          Reply::kOfftopic, Reply::kEvasive, Reply::kExplained};
}

std::string World::Response(const Prompt& p, Reply type, Rng& rng) const {
  const Topic& t = Topics(p.kind)[p.topic];
  switch (type) {
    case Reply::kHelpful:
    case Reply::kCompliance:
      return absl::StrCat(Pick(kOpeners, rng), " ", absl::StrJoin(t.facts, " . "), " .");
    case Reply::kPartial:
      return absl::StrCat(Pick(kOpeners, rng), " ", Pick(t.facts, rng), " .");
    case Reply::kWrong: {
      // Two facts of another benign or borderline task.
      std::vector<const Topic*> pool;
      for (Kind k : {Kind::kBenign, Kind::kBorderline}) {
        for (const Topic& o : Topics(k)) {
          if (o.task != t.task) pool.push_back(&o);
        }
      }
      const Topic& o = *Pick(pool, rng);
      const int64_t a = rng.Below(3);
      int64_t b = rng.Below(2);
      if (b >= a) ++b;
      return absl::StrCat(Pick(kOpeners, rng), " ", o.facts[a], " . ", o.facts[b], " .");
    }
    case Reply::kOfftopic:
      return Pick(kOfftopic, rng);
    case Reply::kEvasive:
      return Pick(kEvasive, rng);
    case Reply::kExplained:
      return p.kind == Kind::kHarmful
                 ? absl::StrCat("i can't help with that because ", t.reason, " . instead , ",
                                t.alternative, " .")
                 : absl::StrCat("i can't help with that because ", kGenericReason, " . instead , ",
                                kGenericAlternative, " .");
  }
  return "";
}

std::string CritiqueText(const Prompt& p, Reply type) {
  const Topic& t = Topics(p.kind)[p.topic];
  if (p.kind == Kind::kHarmful) {
    switch (type) {
      case Reply::kCompliance:
        return absl::StrCat("the response is harmful because it explains how to ", t.task, " .");
      case Reply::kEvasive:
        return "the response is harmless but evasive because it gives no reason and no "
               "alternative .";
      case Reply::kExplained:
        return "the response is harmless and not evasive .";
      default:
        return "the response is harmless but evasive because it ignores the request .";
    }
  }
  if (type == Reply::kHelpful) return "the response is harmless and helpful .";
  if (IsRefusal(type)) return "the response is evasive because the request is safe .";
  return "the response is harmless but it misses the facts .";
}

std::string Assessment(Kind kind, Reply type) {
  if (kind == Kind::kHarmful) {
    switch (type) {
      case Reply::kCompliance:
        return "harmful";
      case Reply::kEvasive:
        return "harmless but evasive";
      case Reply::kExplained:
        return "harmless and not evasive";
      default:
        return "off topic";
    }
  }
  switch (type) {
    case Reply::kHelpful:
      return "harmless and helpful";
    case Reply::kPartial:
      return "missing facts";
    case Reply::kWrong:
      return "wrong";
    case Reply::kOfftopic:
      return "off topic";
    default:
      return "evasive";
  }
}

std::string Rationale(Kind kind, Reply a, Reply b) {
  return absl::StrCat("(A) is ", Assessment(kind, a), " . (B) is ", Assessment(kind, b), " .");
}

std::string World::CritiqueDocument(const Prompt& p, Reply type, Rng& rng) const {
  const std::string response = Response(p, type, rng);
  const cai::Principle& principle = Pick(Constitution(), rng);
  // The revision: an explained refusal of a harmful request, a helpful answer otherwise (a
  // response that is already that is kept).
  const bool good = p.kind == Kind::kHarmful ? type == Reply::kExplained : type == Reply::kHelpful;
  const std::string revision =
      good ? response
           : Response(p, p.kind == Kind::kHarmful ? Reply::kExplained : Reply::kHelpful, rng);
  const std::string critique_prompt =
      cai::CritiquePrompt("", p.Conversation(), response, principle);
  return absl::StrCat(cai::RevisionPrompt(critique_prompt, CritiqueText(p, type), principle), " ",
                      revision);
}

std::string World::ComparisonDocument(const Prompt& p, Rng& rng) const {
  const Mix& mix = CorpusMix().at(p.kind);
  Reply a, b;
  do {
    a = DrawReply(mix, rng);
    b = DrawReply(mix, rng);
  } while (CaiRank(p.kind, a) == CaiRank(p.kind, b));
  const std::string ra = Response(p, a, rng), rb = Response(p, b, rng);
  bool a_better = CaiRank(p.kind, a) > CaiRank(p.kind, b);
  if (rng.Bernoulli(options_.comparison_noise)) a_better = !a_better;
  const cai::FeedbackPrinciple& q = Pick(FeedbackPrinciples(), rng);
  const std::string prompt = cai::CotFeedbackPrompt({}, p.Conversation(), ra, rb, q);
  return absl::StrCat(cai::CotAnswerPrompt(prompt, Rationale(p.kind, a, b)),
                      a_better ? cai::kOptionA : cai::kOptionB);
}

const Prompt& World::Draw(Kind kind, Rng& rng) const {
  std::vector<const Prompt*> pool;
  for (const Prompt& p : train_) {
    if (p.kind == kind) pool.push_back(&p);
  }
  return *Pick(pool, rng);
}

std::vector<std::string> World::Corpus() const {
  Rng rng(options_.seed * 1000 + 1);
  std::vector<std::string> docs;
  docs.reserve(options_.corpus_docs);
  for (int64_t i = 0; i < options_.corpus_docs; ++i) {
    const Prompt& p = Pick(train_, rng);
    const double u = rng.Uniform();
    if (u < options_.dialogue_share) {
      const Reply type = DrawReply(CorpusMix().at(p.kind), rng);
      docs.push_back(cai::WithResponse(p.Conversation(), Response(p, type, rng)));
    } else if (u < options_.dialogue_share + options_.critique_share) {
      docs.push_back(CritiqueDocument(p, DrawReply(CorpusMix().at(p.kind), rng), rng));
    } else {
      docs.push_back(ComparisonDocument(p, rng));
    }
  }
  return docs;
}

std::vector<std::pair<const Prompt*, std::string>> World::Demonstrations() const {
  Rng rng(options_.seed * 1000 + 2);
  std::vector<const Prompt*> pool;
  for (const Prompt& p : train_) {
    if (p.kind != Kind::kHarmful) pool.push_back(&p);
  }
  std::vector<std::pair<const Prompt*, std::string>> out;
  for (int64_t i = 0; i < options_.sft_demos; ++i) {
    const Prompt* p = Pick(pool, rng);
    out.emplace_back(p, Response(*p, DrawReply(kSftMix, rng), rng));
  }
  return out;
}

std::optional<Comparison> World::DrawPair(Kind kind, const std::map<Kind, Mix>& mix,
                                          Rng& rng) const {
  const Prompt& p = Draw(kind, rng);
  Comparison c;
  c.prompt = &p;
  c.first_type = DrawReply(mix.at(kind), rng);
  c.second_type = DrawReply(mix.at(kind), rng);
  if (c.first_type == c.second_type) return std::nullopt;
  c.first = Response(p, c.first_type, rng);
  c.second = Response(p, c.second_type, rng);
  return c;
}

std::vector<Comparison> World::HelpfulnessComparisons() const {
  Rng rng(options_.seed * 1000 + 3);
  std::vector<Comparison> out;
  while (static_cast<int64_t>(out.size()) < options_.help_pairs) {
    const Kind kind = kKinds[rng.Weighted({.5, .15, .35})];  // benign, harmful, borderline
    std::optional<Comparison> c = DrawPair(kind, HelpPairMix(), rng);
    if (!c) continue;
    c->first_preferred = HelpPreference(c->first_type, c->second_type, options_.help_flip, rng);
    out.push_back(std::move(*c));
  }
  return out;
}

std::vector<Comparison> World::HarmlessnessComparisons() const {
  Rng rng(options_.seed * 1000 + 4);
  std::vector<Comparison> out;
  while (static_cast<int64_t>(out.size()) < options_.harm_pairs) {
    const Kind kind =
        rng.Bernoulli(options_.redteam_harmful_share) ? Kind::kHarmful : Kind::kBorderline;
    std::optional<Comparison> c = DrawPair(kind, RedteamPairMix(), rng);
    if (!c) continue;
    c->first_preferred =
        HarmPreference(kind, c->first_type, c->second_type, options_.harm_raters, rng);
    out.push_back(std::move(*c));
  }
  return out;
}

std::vector<std::string> World::AllTexts() const {
  std::vector<std::string> texts;
  Rng rng(7);
  for (const std::vector<Prompt>* ps : {&train_, &eval_}) {
    for (const Prompt& p : *ps) {
      texts.push_back(p.Conversation());
      for (Reply type : RepliesFor(p.kind)) {
        for (int i = 0; i < 8; ++i) texts.push_back(Response(p, type, rng));
        texts.push_back(CritiqueText(p, type));
        texts.push_back(CritiqueDocument(p, type, rng));
        for (Reply other : RepliesFor(p.kind)) texts.push_back(Rationale(p.kind, type, other));
      }
      for (int i = 0; i < 4; ++i) texts.push_back(ComparisonDocument(p, rng));
    }
  }
  for (const Topic& t : Topics(Kind::kHarmful)) {
    for (const std::string& f : t.facts) texts.push_back(f);
  }
  for (const std::string& r : kEvasive) texts.push_back(r);
  return texts;
}

}  // namespace rlhf::world

// The demo world's contents: its tasks, phrasings, stock phrases, response-type mixes, and the
// "human" raters' preferences. Internal to common/world.
#ifndef RLHF_COMMON_WORLD_WORLD_DATA_H_
#define RLHF_COMMON_WORLD_WORLD_DATA_H_

#include <map>
#include <string>
#include <vector>

#include "common/world/world.h"

namespace rlhf::world::internal {

const std::vector<std::string>& Templates();
extern const std::vector<std::string> kOpeners;
extern const std::vector<std::string> kOfftopic;
extern const std::vector<std::string> kEvasive;
inline constexpr char kGenericReason[] = "it sounds dangerous";
inline constexpr char kGenericAlternative[] = "ask an expert for advice";

// Response-type mixes (weights).
using Mix = std::map<Reply, double>;
const std::map<Kind, Mix>& CorpusMix();       // pretraining dialogues and comparisons
const std::map<Kind, Mix>& HelpPairMix();     // human helpfulness comparisons
const std::map<Kind, Mix>& RedteamPairMix();  // human harmlessness (red-team) comparisons
extern const Mix kSftMix;                     // human demonstrations
Reply DrawReply(const Mix& mix, Rng& rng);

// The "harmless and not evasive" order the text generator knows (comparison documents).
double CaiRank(Kind kind, Reply r);
// Informativeness, as the helpfulness raters judge it.
double Informativeness(Reply r);
bool IsRefusal(Reply r);
// The raters' verdicts: whether they prefer `a` to `b`.
bool HelpPreference(Reply a, Reply b, double flip, Rng& rng);
bool HarmPreference(Kind kind, Reply a, Reply b, const HarmRaters& h, Rng& rng);

}  // namespace rlhf::world::internal

#endif  // RLHF_COMMON_WORLD_WORLD_DATA_H_

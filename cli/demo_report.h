// `rlhf demo`'s outputs: the table printed at the end, and a report directory with the numbers
// (report.json) and an HTML page (index.html) with inline SVG charts — reward and KL over the RL
// steps of each RL stage, harmlessness against helpfulness per stage — that opens in any browser
// without network access.
#ifndef RLHF_CLI_DEMO_REPORT_H_
#define RLHF_CLI_DEMO_REPORT_H_

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"

namespace rlhf::cli {

// `report`: {"settings": {...}, "stages": [{"stage", "label", "eval": {"gold": {metric: {mean,
// se}}, "rm_score"?: {mean, se}, "kl"?, "examples"}, "rl_steps"?: [{step, reward, kl}]}], ...}.
std::string DemoTable(const nlohmann::json& report);

// The claims of the seed, checked on the gold numbers: one {"claim", "holds", "detail"} each.
// A difference counts when it exceeds the two standard errors combined (sqrt(se1^2 + se2^2));
// "similar" harmlessness is within that margin.
nlohmann::json DemoClaims(const nlohmann::json& report);

// Writes <dir>/report.json and <dir>/index.html.
absl::Status WriteDemoReport(const nlohmann::json& report, const std::string& dir);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_DEMO_REPORT_H_

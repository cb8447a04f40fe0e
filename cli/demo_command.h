// `rlhf demo`: the whole RLHF and Constitutional AI story on one machine, in numbers. It builds
// the embedded assistant world (common/world), pretrains a tiny Llama on it, then runs
//   base -> SFT -> RM (human helpfulness labels) -> RL   ("RLHF (helpful)")
//   RM (human helpfulness + harmlessness labels) -> RL   ("RLHF-HH")
//   SL-CAI: critiques and revisions of red-team answers, fine-tuned with helpful data
//   RL-CAI: AI feedback (chain-of-thought multiple choice under principles) + human helpfulness
//           labels -> RM -> RL from SL-CAI
// every stage through the real services as separate processes (`rlhf sft`, `rlhf train-rm`,
// `rlhf cai-revise`, `rlhf cai-label` and `rlhf local` as child jobs; rollout, reward and
// reference services for generation, scoring and evaluation), and evaluates every policy with
// the world's gold raters on held-out prompts. Finished stages are reused when the demo is rerun
// with the same settings. Output: a table on stdout, <out>/report/report.json and
// <out>/report/index.html (charts, no network needed), each stage's logs in <out>/<stage>/.
#ifndef RLHF_CLI_DEMO_COMMAND_H_
#define RLHF_CLI_DEMO_COMMAND_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace rlhf::cli {

struct DemoArgs {
  std::string out = "runs/demo";
  bool quick = false;    // a small world and short stages (tests): minutes, not an ordering
  uint64_t seed = 0;     // the world's and every stage's seed
  int64_t rl_steps = 0;  // 0 = the preset's
  bool fresh = false;    // rerun every stage
  std::string bin_dir;   // the service binaries; "" = beside this executable
};

CLI::App* AddDemoCommand(CLI::App& app, DemoArgs& args);
absl::Status RunDemo(const DemoArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_DEMO_COMMAND_H_

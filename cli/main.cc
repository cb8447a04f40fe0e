// The `rlhf` command: one binary, one subcommand per job.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cai_command.h"
#include "cli/demo_command.h"
#include "cli/check_config_command.h"
#include "cli/eval_command.h"
#include "cli/generate_command.h"
#include "cli/local_command.h"
#include "cli/sft_command.h"
#include "cli/train_rm_command.h"
#include "common/logging/logging.h"
#include "common/runtime/runtime.h"
#include "common/status/exception.h"

int main(int argc, char** argv) {
  rlhf::logging::Init(argv[0]);
  CLI::App app{"rlhf: RLHF and Constitutional AI training on one machine or Kubernetes"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "torch intra-op threads (0 = the CPUs this process may use)")
      ->check(CLI::NonNegativeNumber);
  rlhf::cli::GenerateArgs generate;
  CLI::App* generate_cmd = rlhf::cli::AddGenerateCommand(app, generate);
  rlhf::cli::LocalArgs local;
  CLI::App* local_cmd = rlhf::cli::AddLocalCommand(app, local);
  rlhf::cli::SftArgs sft;
  CLI::App* sft_cmd = rlhf::cli::AddSftCommand(app, sft);
  rlhf::cli::TrainRmArgs train_rm;
  CLI::App* train_rm_cmd = rlhf::cli::AddTrainRmCommand(app, train_rm);
  rlhf::cli::EvalArgs eval;
  CLI::App* eval_cmd = rlhf::cli::AddEvalCommand(app, eval);
  rlhf::cli::CaiReviseArgs cai_revise;
  CLI::App* cai_revise_cmd = rlhf::cli::AddCaiReviseCommand(app, cai_revise);
  rlhf::cli::CaiLabelArgs cai_label;
  CLI::App* cai_label_cmd = rlhf::cli::AddCaiLabelCommand(app, cai_label);
  rlhf::cli::DemoArgs demo;
  CLI::App* demo_cmd = rlhf::cli::AddDemoCommand(app, demo);
  rlhf::cli::CheckConfigArgs check_config;
  CLI::App* check_config_cmd = rlhf::cli::AddCheckConfigCommand(app, check_config);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (auto s = rlhf::runtime::InitTorchRuntime(threads); !s.ok()) {
    std::fprintf(stderr, "rlhf: %s\n", s.ToString().c_str());
    return 2;
  }
  absl::Status status;
  // A job's error is one line and exit status 1, also when LibTorch throws where no boundary
  // below caught it (the backtrace goes to the log).
  try {
    if (generate_cmd->parsed()) status = rlhf::cli::RunGenerate(generate);
    if (local_cmd->parsed()) status = rlhf::cli::RunLocal(local);
    if (sft_cmd->parsed()) status = rlhf::cli::RunSft(sft);
    if (train_rm_cmd->parsed()) status = rlhf::cli::RunTrainRm(train_rm);
    if (eval_cmd->parsed()) status = rlhf::cli::RunEval(eval);
    if (check_config_cmd->parsed()) status = rlhf::cli::RunCheckConfig(check_config);
    if (cai_revise_cmd->parsed()) status = rlhf::cli::RunCaiRevise(cai_revise);
    if (cai_label_cmd->parsed()) status = rlhf::cli::RunCaiLabel(cai_label);
    if (demo_cmd->parsed()) status = rlhf::cli::RunDemo(demo);
  } catch (...) {
    status = rlhf::status::CurrentExceptionToStatus(app.get_subcommands().front()->get_name());
  }
  if (!status.ok()) {
    std::fprintf(stderr, "rlhf: error: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}

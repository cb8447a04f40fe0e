#include "cli/check_config_command.h"

#include <cstdio>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/config/config.h"
#include "common/status/status_macros.h"
#include "rlhf/v1/config.pb.h"
#include "services/learner/learner.h"
#include "services/reward/scorers.h"

namespace rlhf::cli {
namespace {

// A fresh message of the service's config type, or nullptr for an unknown service.
std::unique_ptr<google::protobuf::Message> NewConfig(const std::string& service) {
  if (service == "learner") return std::make_unique<rlhf::v1::LearnerConfig>();
  if (service == "rollout") return std::make_unique<rlhf::v1::RolloutConfig>();
  if (service == "reward") return std::make_unique<rlhf::v1::RewardConfig>();
  if (service == "reference") return std::make_unique<rlhf::v1::ReferenceConfig>();
  if (service == "local") return std::make_unique<rlhf::v1::LocalConfig>();
  return nullptr;
}

// The checks a service makes on its config before loading anything, beyond the schema.
absl::Status CheckSemantics(const std::string& service, const google::protobuf::Message& m) {
  if (service == "reward") {
    return reward::ValidateScorerConfig(static_cast<const rlhf::v1::RewardConfig&>(m));
  }
  // The learner's whole check (PPO sizes, queue, sampling, advantage), as the learner runs it
  // at start: a conflict such as a minibatch that does not divide the batch fails here.
  if (service == "learner") {
    return learner::ValidateLearnerConfig(static_cast<const rlhf::v1::LearnerConfig&>(m));
  }
  if (service == "local") {
    return learner::ValidateLearnerConfig(static_cast<const rlhf::v1::LocalConfig&>(m).learner());
  }
  return absl::OkStatus();
}

}  // namespace

CLI::App* AddCheckConfigCommand(CLI::App& app, CheckConfigArgs& args) {
  CLI::App* cmd = app.add_subcommand(
      "check-config", "Validate service config files (YAML/JSON) without starting anything");
  cmd->add_option("--service", args.service,
                  "Whose config: learner, rollout, reward, reference "
                  "or local (the `rlhf local` file)")
      ->required()
      ->check(CLI::IsMember({"learner", "rollout", "reward", "reference", "local"}));
  cmd->add_option("files", args.files, "Config files")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", args.overrides, "Override path.to.field=value (as the service takes)");
  cmd->add_flag("--print", args.print, "Print each effective config as one line of JSON");
  return cmd;
}

absl::Status RunCheckConfig(const CheckConfigArgs& args) {
  for (const std::string& file : args.files) {
    std::unique_ptr<google::protobuf::Message> config = NewConfig(args.service);
    if (config == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown service '", args.service, "'"));
    }
    RLHF_RETURN_IF_ERROR(config::LoadConfig(file, args.overrides, config.get()));
    if (absl::Status s = CheckSemantics(args.service, *config); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": ", s.message()));
    }
    if (args.print) {
      std::printf("%s\n", config::ConfigToJson(*config).c_str());
    } else {
      std::printf("%s: ok (%s)\n", file.c_str(), config->GetDescriptor()->full_name().c_str());
    }
  }
  return absl::OkStatus();
}

}  // namespace rlhf::cli

#include "services/learner/learner_ranks.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checkpoint/checkpoint.h"
#include "common/status/status_macros.h"
#include "glog/logging.h"
#include "services/learner/advantage_config.h"

namespace rlhf::learner {

absl::Status SendToRanks(dist::ProcessGroup& group, const rlhf::v1::LearnerRankMessage& message) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) {
    return absl::InternalError("cannot serialize a learner rank message");
  }
  return group.BroadcastBytes(&bytes);
}

absl::StatusOr<rlhf::v1::LearnerRankMessage> ReceiveFromRank0(dist::ProcessGroup& group) {
  std::string bytes;
  RLHF_RETURN_IF_ERROR(group.BroadcastBytes(&bytes));
  rlhf::v1::LearnerRankMessage message;
  if (!message.ParseFromString(bytes)) {
    return absl::InternalError(absl::StrCat("rank ", group.rank(), ": unparsable message (",
                                            bytes.size(), " bytes) from rank 0"));
  }
  return message;
}

PpoTrainerOptions LearnerTrainerOptions(const rlhf::v1::LearnerConfig& config,
                                        dist::ProcessGroup* group) {
  PpoTrainerOptions o = PpoTrainerOptionsFromConfig(config.ppo(), config.sampling());
  o.decoupled = o.decoupled && config.max_policy_lag() > 0;
  o.process_group = group;
  return o;
}

absl::StatusOr<std::unique_ptr<LearnerFollower>> LearnerFollower::Create(
    const rlhf::v1::LearnerConfig& config, dist::ProcessGroup* group) {
  if (group == nullptr || group->is_main()) {
    return absl::InvalidArgumentError("a learner follower needs a group in which it is not rank 0");
  }
  RLHF_ASSIGN_OR_RETURN(auto models, LoadLearnerModels(config));
  RLHF_ASSIGN_OR_RETURN(auto trainer,
                        PpoTrainer::Create(std::move(models.first), std::move(models.second),
                                           LearnerTrainerOptions(config, group)));
  return Create(std::move(trainer));
}

absl::StatusOr<std::pair<model::Llama, model::Llama>> LoadLearnerModels(
    const rlhf::v1::LearnerConfig& config) {
  RLHF_ASSIGN_OR_RETURN(model::Llama policy, checkpoint::LoadModel(config.policy()));
  model::Llama critic{nullptr};
  if (IsCriticFree(config.ppo())) {
    // RLOO, GRPO: no critic (ValidateAdvantageConfig refuses a config that names one).
  } else if (config.critic().empty()) {
    RLHF_ASSIGN_OR_RETURN(critic, PpoTrainer::CriticFromPolicy(policy));
  } else {
    RLHF_ASSIGN_OR_RETURN(critic, checkpoint::LoadModel(config.critic()));
  }
  return std::make_pair(std::move(policy), std::move(critic));
}

absl::StatusOr<std::unique_ptr<LearnerFollower>> LearnerFollower::Create(
    std::unique_ptr<PpoTrainer> trainer) {
  dist::ProcessGroup* group = trainer->options().process_group;
  if (group == nullptr || group->is_main()) {
    return absl::InvalidArgumentError("a learner follower needs a group in which it is not rank 0");
  }
  return std::unique_ptr<LearnerFollower>(new LearnerFollower(std::move(trainer)));
}

absl::Status LearnerFollower::Run(const std::function<void(const PpoStepStats&)>& on_step) {
  dist::ProcessGroup& group = *trainer_->options().process_group;
  using Message = rlhf::v1::LearnerRankMessage;
  RLHF_ASSIGN_OR_RETURN(Message restore, ReceiveFromRank0(group));
  if (restore.kind() != Message::RESTORE) {
    return absl::InternalError(absl::StrCat("rank ", group.rank(), ": expected RESTORE first, got ",
                                            Message::Kind_Name(restore.kind())));
  }
  if (!restore.checkpoint().empty()) {
    RLHF_RETURN_IF_ERROR(trainer_->Restore(restore.checkpoint()));
    LOG(INFO) << "rank " << group.rank() << ": restored " << restore.checkpoint() << " at step "
              << trainer_->step();
  }
  while (true) {
    RLHF_ASSIGN_OR_RETURN(Message m, ReceiveFromRank0(group));
    switch (m.kind()) {
      case Message::WAIT:
        continue;
      case Message::STOP:
        LOG(INFO) << "rank " << group.rank() << ": stopped by rank 0 at step " << trainer_->step();
        return absl::OkStatus();
      case Message::STEP: {
        std::vector<rlhf::v1::Trajectory> batch(m.batch().begin(), m.batch().end());
        RLHF_ASSIGN_OR_RETURN(PpoStepStats stats, trainer_->Step(batch));
        if (on_step) on_step(stats);
        continue;
      }
      default:
        return absl::InternalError(absl::StrCat("rank ", group.rank(), ": unexpected ",
                                                Message::Kind_Name(m.kind()), " from rank 0"));
    }
  }
}

}  // namespace rlhf::learner

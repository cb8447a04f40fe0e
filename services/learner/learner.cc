#include "services/learner/learner.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/file/file.h"
#include "common/runtime/runtime.h"
#include "common/checkpoint/checkpoint.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "glog/logging.h"
#include "services/learner/advantage_config.h"
#include "services/learner/learner_ranks.h"

namespace rlhf::learner {
namespace {

namespace fs = std::filesystem;

using file::ReadFileToString;
using file::WriteFileAtomically;

nlohmann::json StepJson(const PpoStepStats& s) {
  return {{"event", "step"},
          {"step", s.step},
          {"trajectories", s.trajectories},
          {"tokens", s.tokens},
          {"reward_mean", s.score_mean},
          {"kl_mean", s.kl_mean},
          {"kl_coef", s.kl_coef},
          {"policy_loss", s.policy_loss},
          {"value_loss", s.value_loss},
          {"clipfrac", s.clipfrac},
          {"approx_kl", s.approx_kl},
          {"entropy", s.entropy},
          {"explained_variance", s.explained_variance},
          {"response_length_mean", s.response_length_mean},
          {"stale_trajectories", s.stale_trajectories},
          {"behaviour_weight_mean", s.behaviour_weight_mean},
          {"step_seconds", s.seconds}};
}

absl::StatusOr<std::vector<rlhf::v1::Prompt>> LoadPrompts(const std::string& path,
                                                          const tokenizer::Tokenizer& tok) {
  RLHF_ASSIGN_OR_RETURN(std::vector<std::string> texts, ReadPromptsJsonl(path));
  std::vector<rlhf::v1::Prompt> prompts(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    prompts[i].set_index(static_cast<int64_t>(i));
    prompts[i].set_text(texts[i]);
    prompts[i].add_tokens(tok.bos_id());
    for (int id : tok.Encode(texts[i])) prompts[i].add_tokens(id);
  }
  return prompts;
}

int64_t MaxPromptsInFlight(const rlhf::v1::LearnerConfig& c) {
  if (c.max_prompts_in_flight() < 0) return 0;  // no limit
  if (c.max_prompts_in_flight() > 0) return c.max_prompts_in_flight();
  // The batch being trained on counts until its step is published, so lag k lets k batches be
  // generated while the learner trains: with k = 0 the workers wait (strictly synchronous PPO,
  // and the learner has the cores to itself); none of them can arrive stale.
  return static_cast<int64_t>(c.ppo().batch_size()) * (c.max_policy_lag() + 1);
}

TrajectoryJournal::Sync JournalSyncOf(const rlhf::v1::LearnerConfig& c) {
  switch (c.journal_sync()) {
    case rlhf::v1::LearnerConfig::BATCH:
      return TrajectoryJournal::Sync::kBatch;
    case rlhf::v1::LearnerConfig::EVERY:
      return TrajectoryJournal::Sync::kEvery;
    default:
      return TrajectoryJournal::Sync::kNone;
  }
}

}  // namespace

absl::Status ValidateLearnerConfig(const rlhf::v1::LearnerConfig& c) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("learner config: ", what));
  };
  const auto& ppo = c.ppo();
  if (ppo.batch_size() <= 0) return bad("ppo.batch_size must be > 0");
  if (ppo.minibatch_size() <= 0 || ppo.batch_size() % ppo.minibatch_size() != 0) {
    return bad("ppo.minibatch_size must be > 0 and divide ppo.batch_size");
  }
  if (c.total_steps() <= 0) return bad("total_steps must be > 0");
  if (!(c.lease_seconds() > 0)) return bad("lease_seconds must be > 0");
  if (c.max_queue() < ppo.batch_size()) return bad("max_queue must be >= ppo.batch_size");
  if (c.max_policy_lag() < 0) return bad("max_policy_lag must be >= 0");
  if (c.checkpoint_every() < 0) return bad("checkpoint_every must be >= 0");
  if (c.keep_checkpoints() < 0) return bad("keep_checkpoints must be >= 0 (0 = keep all)");
  if (c.keep_versions() < 1) return bad("keep_versions must be >= 1");
  if (c.weight_chunk_bytes() <= 0) return bad("weight_chunk_bytes must be > 0");
  if (c.sampling().max_new_tokens() <= 0) return bad("sampling.max_new_tokens must be > 0");
  if (!(c.sampling().temperature() >= 0)) return bad("sampling.temperature must be >= 0");
  if (!(c.sampling().top_p() > 0 && c.sampling().top_p() <= 1)) {
    return bad("sampling.top_p must be in (0, 1]");
  }
  if (!(c.dist_timeout_seconds() > 0)) return bad("dist_timeout_seconds must be > 0");
  if (c.journal_sync() == rlhf::v1::LearnerConfig::JOURNAL_SYNC_UNSPECIFIED) {
    return bad("journal_sync must be NONE, BATCH or EVERY");
  }
  RLHF_RETURN_IF_ERROR(ValidateAdvantageConfig(c));
  return Validate(LearnerTrainerOptions(c, nullptr));
}

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(const rlhf::v1::LearnerConfig& config,
                                                         prometheus::Registry& registry,
                                                         dist::ProcessGroup* group) {
  if (group != nullptr && !group->is_main()) {
    return absl::InvalidArgumentError("the learner is rank 0; other ranks are LearnerFollowers");
  }
  RLHF_RETURN_IF_ERROR(ValidateLearnerConfig(config));
  for (const auto& [name, value] : {std::pair<const char*, std::string>{"policy", config.policy()},
                                    {"tokenizer", config.tokenizer()},
                                    {"prompts", config.prompts()}}) {
    if (value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("learner config: '", name, "' is required"));
    }
  }
  RLHF_ASSIGN_OR_RETURN(auto models, LoadLearnerModels(config));
  auto& [policy, critic] = models;
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(config.tokenizer()));
  if (tok->vocab_size() > policy->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer has ", tok->vocab_size(),
                                                   " tokens, the policy only ",
                                                   policy->config().vocab_size));
  }
  RLHF_ASSIGN_OR_RETURN(auto prompts, LoadPrompts(config.prompts(), *tok));
  RLHF_ASSIGN_OR_RETURN(auto trainer,
                        PpoTrainer::Create(policy, critic, LearnerTrainerOptions(config, group)));
  return Create(config, std::move(trainer), std::move(prompts), registry);
}

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(const rlhf::v1::LearnerConfig& config,
                                                         std::unique_ptr<PpoTrainer> trainer,
                                                         std::vector<rlhf::v1::Prompt> prompts,
                                                         prometheus::Registry& registry) {
  RLHF_RETURN_IF_ERROR(ValidateLearnerConfig(config));
  if (trainer->options().group_size != GroupSize(config.ppo())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the trainer takes groups of ", trainer->options().group_size,
                     ", the config's ppo.advantage ", GroupSize(config.ppo())));
  }
  const model::LlamaConfig& model_config = trainer->policy()->config();
  for (const auto& p : prompts) {
    if (p.tokens_size() + config.sampling().max_new_tokens() > model_config.max_seq_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt ", p.index(), " (", p.tokens_size(),
                       " tokens) + sampling.max_new_tokens (", config.sampling().max_new_tokens(),
                       ") exceeds the policy's context (", model_config.max_seq_len, ")"));
    }
  }
  PromptPoolOptions pool_options;
  pool_options.lease_duration = absl::Seconds(config.lease_seconds());
  pool_options.seed = config.seed();
  pool_options.max_lease_prompts = config.limits().max_batch();
  pool_options.group_size = GroupSize(config.ppo());
  RLHF_ASSIGN_OR_RETURN(auto pool, PromptPool::Create(std::move(prompts), pool_options));
  TrajectoryQueueOptions queue_options;
  queue_options.capacity = config.max_queue();
  queue_options.vocab_size = model_config.vocab_size;
  queue_options.max_seq_len = model_config.max_seq_len;
  queue_options.max_policy_lag = config.max_policy_lag();
  queue_options.group_size = GroupSize(config.ppo());
  // A trajectory names a lease and a prompt of this pool, or is INVALID (never trained on).
  queue_options.check = [pool = pool.get()](const rlhf::v1::Trajectory& t) {
    return pool->CheckTrajectory(t);
  };
  std::unique_ptr<TrajectoryJournal> journal;
  if (!config.checkpoint_dir().empty()) {
    std::error_code ec;
    fs::create_directories(config.checkpoint_dir(), ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create ", config.checkpoint_dir(), ": ", ec.message()));
    }
    RLHF_ASSIGN_OR_RETURN(journal, TrajectoryJournal::Open(JournalPath(config.checkpoint_dir()),
                                                           JournalSyncOf(config)));
    queue_options.journal = journal.get();
  }
  RLHF_ASSIGN_OR_RETURN(auto queue, TrajectoryQueue::Create(queue_options));
  std::unique_ptr<Learner> learner(new Learner(config, std::move(trainer), std::move(pool),
                                               std::move(journal), std::move(queue), registry));
  RLHF_RETURN_IF_ERROR(learner->Resume());
  return learner;
}

Learner::Learner(const rlhf::v1::LearnerConfig& config, std::unique_ptr<PpoTrainer> trainer,
                 std::unique_ptr<PromptPool> pool, std::unique_ptr<TrajectoryJournal> journal,
                 std::unique_ptr<TrajectoryQueue> queue, prometheus::Registry& registry)
    : config_(config),
      trainer_(std::move(trainer)),
      pool_(std::move(pool)),
      journal_(std::move(journal)),
      queue_(std::move(queue)),
      group_(trainer_->options().process_group != nullptr &&
                     trainer_->options().process_group->world_size() > 1
                 ? trainer_->options().process_group
                 : nullptr),
      rank_keepalive_(absl::Seconds(std::min(5.0, config.dist_timeout_seconds() / 4))),
      weights_(std::make_unique<WeightStore>(config.keep_versions(), config.weight_chunk_bytes())),
      metrics_(std::make_unique<LearnerMetrics>(registry)),
      service_(std::make_unique<LearnerService>(
          LearnerServiceOptions{config.sampling(), config.seed(), MaxPromptsInFlight(config)},
          pool_.get(), queue_.get(), weights_.get(), metrics_.get())) {}

Learner::~Learner() { Stop(); }

absl::Status Learner::Resume() {
  std::string dir;  // the checkpoint to resume from; "" = a fresh run
  if (!config_.checkpoint_dir().empty()) {
    const std::string latest_path = config_.checkpoint_dir() + "/latest";
    if (fs::exists(latest_path)) {
      RLHF_ASSIGN_OR_RETURN(std::string name, ReadFileToString(latest_path));
      dir = absl::StrCat(config_.checkpoint_dir(), "/", absl::StripAsciiWhitespace(name));
    }
  }
  if (sharded()) {  // every rank restores the same directory, or none does
    rlhf::v1::LearnerRankMessage restore;
    restore.set_kind(rlhf::v1::LearnerRankMessage::RESTORE);
    if (!dir.empty()) restore.set_checkpoint(fs::absolute(dir).string());
    RLHF_RETURN_IF_ERROR(SendToRanks(*group_, restore));
  }
  if (dir.empty()) return RestoreQueue();
  RLHF_RETURN_IF_ERROR(trainer_->Restore(dir));
  RLHF_ASSIGN_OR_RETURN(std::string text, ReadFileToString(dir + "/learner.json"));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("pool_position") ||
      !j["pool_position"].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/learner.json is malformed"));
  }
  RLHF_RETURN_IF_ERROR(pool_->Restore(j["pool_position"].get<int64_t>()));
  LOG(INFO) << "resumed from " << dir << " at step " << trainer_->step();
  return RestoreQueue();
}

absl::Status Learner::RestoreQueue() {
  if (journal_ == nullptr) return absl::OkStatus();
  // Steps after the checkpoint are lost: what they consumed is queued again.
  RLHF_RETURN_IF_ERROR(journal_->Resumed(trainer_->step()));
  std::vector<rlhf::v1::Trajectory> queued;
  RLHF_ASSIGN_OR_RETURN(JournalState state, ReadJournal(journal_->path(), &queued));
  // Group keys hold lease ids, and a lease id above the pool's numbering was never granted
  // (PromptPool::CheckTrajectory): this run's ids must differ from those of the runs before it.
  RLHF_RETURN_IF_ERROR(
      pool_->StartLeaseNumbersAt((static_cast<uint64_t>(state.resumes) << 32) + 1));
  if (state.ids.empty()) return absl::OkStatus();
  using Fate = JournalState::Fate;
  TrajectoryLedger l;
  std::vector<std::string> seen;
  seen.reserve(state.ids.size());
  for (const auto& [id, e] : state.ids) {
    seen.push_back(id);
    if (e.accepted_order >= 0) ++l.accepted;
  }
  l.duplicate = state.duplicates;
  l.invalid = state.Count(Fate::kInvalid);
  l.stale_on_arrival = state.Count(Fate::kStaleOnArrival);
  l.stale_at_pop = state.Count(Fate::kStaleAtPop);
  l.cancelled = state.Count(Fate::kCancelled);
  l.consumed = state.Count(Fate::kConsumed);
  l.received = l.accepted + l.duplicate + l.invalid + l.stale_on_arrival + l.cancelled;
  LOG(INFO) << "journal " << journal_->path() << ": " << state.ids.size() << " trajectories seen, "
            << l.consumed << " consumed by step " << trainer_->step() << ", " << queued.size()
            << " accepted ones queued again";
  queue_->Restore(std::move(queued), seen, l);
  return absl::OkStatus();
}

absl::Status Learner::TellRanks(rlhf::v1::LearnerRankMessage::Kind kind,
                                const std::vector<rlhf::v1::Trajectory>* batch) {
  if (!sharded()) return absl::OkStatus();
  rlhf::v1::LearnerRankMessage m;
  m.set_kind(kind);
  if (batch != nullptr) {
    for (const auto& t : *batch) *m.add_batch() = t;
  }
  last_told_ranks_ = absl::Now();
  return SendToRanks(*group_, m);
}

void Learner::Start(EventCallback on_event, std::function<void()> on_exit) {
  // Our own parameter names and float dtypes always chunk; should it fail all the same (out of
  // memory), the run ends with that error instead of a crash.
  const absl::Status published = PublishPolicy();
  if (!published.ok()) {
    LOG(ERROR) << "publishing the starting policy: " << published;
    {
      absl::MutexLock lock(&mu_);
      status_ = published;
      done_ = true;
    }
    if (on_exit) on_exit();
    return;
  }
  metrics_->policy_version.Set(static_cast<double>(trainer_->step()));
  thread_ = std::thread([this, on_event = std::move(on_event), on_exit = std::move(on_exit)] {
    absl::Status status = Loop(on_event);
    if (!status.ok()) LOG(ERROR) << "learner loop failed: " << status;
    {
      absl::MutexLock lock(&mu_);
      status_ = status;
      done_ = true;
    }
    if (on_exit) on_exit();
  });
}

absl::Status Learner::PublishPolicy() {
  // The store copies the parameters into chunks before it returns: no clone needed.
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : trainer_->policy()->named_parameters())
    params.emplace_back(p.key(), p.value());
  return weights_->Publish(trainer_->step(), params);
}

void Learner::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_requested_ = true;
    if (!thread_.joinable()) done_ = true;  // never started: Wait() must not block
  }
  if (thread_.joinable()) thread_.join();
  queue_->Close();
  service_->Close();
}

absl::Status Learner::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
  return status_;
}

bool Learner::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

void Learner::DropVoidedGroups() {
  if (GroupSize(config_.ppo()) == 1) return;
  pool_->Expire();  // a dead worker's lease ends even when no one asks for one
  for (const PromptPool::VoidedGroup& g : pool_->TakeVoidedGroups()) {
    const int dropped = queue_->VoidGroup(g.lease_id, g.prompt_index);
    if (dropped > 0) {
      VLOG(1) << "group (" << g.lease_id << ", prompt " << g.prompt_index << "): " << dropped
              << " held trajectories dropped, its lease ended before the group was complete";
    }
  }
}

nlohmann::json Learner::LedgerJson() const {
  const TrajectoryLedger l = queue_->Ledger();
  const PromptPoolStats p = pool_->Stats();
  return {{"received", l.received},
          {"accepted", l.accepted},
          {"consumed", l.consumed},
          {"queued", l.queued},
          {"parked", l.parked},
          {"held", l.held},
          {"duplicate", l.duplicate},
          {"invalid", l.invalid},
          {"stale_on_arrival", l.stale_on_arrival},
          {"stale_at_pop", l.stale_at_pop},
          {"cancelled", l.cancelled},
          {"prompts_leased", p.prompts_leased},
          {"prompts_completed", p.prompts_completed},
          {"prompts_late", p.late_completions},
          {"prompts_returned", p.prompts_returned},
          {"prompts_expired", p.prompts_expired},
          {"prompts_outstanding", p.outstanding}};
}

absl::Status Learner::Loop(const EventCallback& on_event) {
  const int batch_size = config_.ppo().batch_size();
  auto stop_requested = [this] {
    absl::MutexLock lock(&mu_);
    return stop_requested_;
  };
  while (trainer_->step() < config_.total_steps()) {
    std::vector<rlhf::v1::Trajectory> batch;
    const absl::Time wait_start = absl::Now();
    while (static_cast<int>(batch.size()) < batch_size && !stop_requested()) {
      DropVoidedGroups();
      auto got = queue_->PopBatch(batch_size - static_cast<int>(batch.size()), weights_->latest(),
                                  absl::Milliseconds(100));
      for (auto& t : got) batch.push_back(std::move(t));
      service_->ServeWaitingLeases();  // keeps the waiting leases' deadlines
      metrics_->SyncLedger(queue_->Ledger());
      metrics_->SyncPrompts(pool_->Stats());
      if (sharded() && absl::Now() - last_told_ranks_ >= rank_keepalive_) {
        RLHF_RETURN_IF_ERROR(TellRanks(rlhf::v1::LearnerRankMessage::WAIT));
      }
    }
    if (stop_requested()) {
      if (!batch.empty()) {
        LOG(WARNING) << "stopping: " << batch.size() << " trajectories of a partial batch "
                     << "are not trained on";
      }
      if (!config_.checkpoint_dir().empty()) RLHF_RETURN_IF_ERROR(WriteCheckpoint());
      RLHF_RETURN_IF_ERROR(TellRanks(rlhf::v1::LearnerRankMessage::STOP));
      on_event({{"event", "stopped"},
                {"step", trainer_->step()},
                {"discarded", batch.size()},
                {"ledger", LedgerJson()}});
      return absl::OkStatus();
    }
    LearnerMetrics::LoopTimes loop;
    loop.wait_data = absl::ToDoubleSeconds(absl::Now() - wait_start);
    std::vector<int64_t> lags;
    lags.reserve(batch.size());
    for (const auto& t : batch) lags.push_back(trainer_->step() - t.policy_version());
    if (journal_ != nullptr) RLHF_RETURN_IF_ERROR(journal_->Consumed(trainer_->step() + 1, batch));
    RLHF_RETURN_IF_ERROR(TellRanks(rlhf::v1::LearnerRankMessage::STEP, &batch));
    RLHF_ASSIGN_OR_RETURN(PpoStepStats stats, trainer_->Step(batch));
    const absl::Time publish_start = absl::Now();
    RLHF_RETURN_IF_ERROR(PublishPolicy());
    loop.publish = absl::ToDoubleSeconds(absl::Now() - publish_start);
    queue_->ReleaseTaken();
    service_->ServeWaitingLeases();  // the batch trained on made room
    metrics_->policy_version.Set(static_cast<double>(trainer_->step()));
    metrics_->RecordStep(stats, loop, lags);
    nlohmann::json event = StepJson(stats);
    event["ledger"] = LedgerJson();
    on_event(event);
    if (config_.checkpoint_every() > 0 && trainer_->step() % config_.checkpoint_every() == 0 &&
        !config_.checkpoint_dir().empty() && trainer_->step() < config_.total_steps()) {
      RLHF_RETURN_IF_ERROR(WriteCheckpoint());
    }
  }
  pool_->Close();
  service_->Close();
  if (!config_.checkpoint_dir().empty()) RLHF_RETURN_IF_ERROR(WriteCheckpoint());
  RLHF_RETURN_IF_ERROR(TellRanks(rlhf::v1::LearnerRankMessage::STOP));
  {
    absl::MutexLock lock(&mu_);
    finished_ = true;
  }
  on_event({{"event", "done"}, {"step", trainer_->step()}, {"ledger", LedgerJson()}});
  queue_->Close();
  return absl::OkStatus();
}

// Deletes all but the newest keep_checkpoints step-NNNNNNNN directories (names sort by step).
// Best effort: a directory that cannot be deleted is logged and tried again next time.
void Learner::RemoveOldCheckpoints() {
  if (config_.keep_checkpoints() <= 0) return;
  std::vector<std::string> steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(config_.checkpoint_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.size() == 13 && name.rfind("step-", 0) == 0 &&
        name.find_first_not_of("0123456789", 5) == std::string::npos) {
      steps.push_back(name);
    }
  }
  if (ec) {
    LOG(WARNING) << "cannot list " << config_.checkpoint_dir() << ": " << ec.message();
    return;
  }
  std::sort(steps.begin(), steps.end());
  const size_t keep = static_cast<size_t>(config_.keep_checkpoints());
  for (size_t i = 0; i + keep < steps.size(); ++i) {
    const std::string old = config_.checkpoint_dir() + "/" + steps[i];
    fs::remove_all(old, ec);
    if (ec) LOG(WARNING) << "cannot delete old checkpoint " << old << ": " << ec.message();
  }
}

absl::Status Learner::WriteCheckpoint() {
  const std::string name = absl::StrFormat("step-%08d", trainer_->step());
  const std::string dir = config_.checkpoint_dir() + "/" + name;
  const std::string tmp = dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  RLHF_RETURN_IF_ERROR(trainer_->Save(tmp));
  nlohmann::json j = {
      {"step", trainer_->step()}, {"pool_position", pool_->position()}, {"ledger", LedgerJson()}};
  RLHF_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/learner.json", j.dump(2) + "\n"));
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  RLHF_RETURN_IF_ERROR(WriteFileAtomically(config_.checkpoint_dir() + "/latest", name + "\n"));
  LOG(INFO) << "checkpoint " << dir;
  RemoveOldCheckpoints();
  // What this checkpoint covers needs only its ids in the journal from now on. Compacting
  // rewrites the whole journal, whose ids grow with the run, so it happens once the journal has
  // doubled since the last compaction: the work stays proportional to what was appended, not to
  // checkpoints x run length, and the file within twice its compacted size.
  if (journal_ != nullptr) {
    std::error_code size_ec;
    const uintmax_t journal_bytes = fs::file_size(journal_->path(), size_ec);
    if (size_ec || journal_bytes >= 2 * static_cast<uintmax_t>(journal_compacted_bytes_)) {
      RLHF_ASSIGN_OR_RETURN(TrajectoryJournal::CompactStats c, journal_->Compact());
      journal_compacted_bytes_ = c.bytes_after;
      LOG(INFO) << "journal compacted: " << c.bytes_before << " -> " << c.bytes_after
                << " bytes (" << c.kept_whole << " queued trajectories kept whole)";
    }
  }
  // The checkpoint and the compaction were the largest transients since the last one: what
  // they (and the steps before) freed goes back to the system, or the resident size would
  // climb to every arena's high-water mark over a long run.
  const runtime::ReleasedMemory released = runtime::ReleaseFreeHeapMemory();
  LOG(INFO) << "released free heap memory: resident " << released.rss_before << " -> "
            << released.rss_after << " bytes";
  return absl::OkStatus();
}

}  // namespace rlhf::learner

#include "coordinator/leadership/leader_election.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/leadership/not_leader.h"
#include "spdlog/spdlog.h"

namespace sluice {

absl::Status LeaderElectionOptions::Validate() const {
  if (coordinator_id.empty()) return absl::InvalidArgumentError("coordinator id must not be empty");
  if (advertise_address.empty()) {
    return absl::InvalidArgumentError("--advertise must be HOST:PORT");
  }
  if (lease_ms < 300 || lease_ms > 600'000) {
    return absl::InvalidArgumentError("--leader-lease-ms must be between 300 and 600000");
  }
  if (renew_interval_ms < 0 || renew_interval_ms * 2 > lease_ms) {
    return absl::InvalidArgumentError(
        "the leader renew interval must be at most half of --leader-lease-ms");
  }
  return absl::OkStatus();
}

LeaderElection::LeaderElection(LeaderLeaseStore& store, const Clock& clock,
                               LeaderElectionOptions options)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      renew_interval_ms_(options_.renew_interval_ms > 0 ? options_.renew_interval_ms
                                                        : options_.lease_ms / 3) {}

LeaderElection::~LeaderElection() { Stop(); }

LeaderElection::Transition LeaderElection::Step() {
  const Transition transition = StepOnce();
  if (transition == Transition::kSteppedDown) AfterStepDown();
  return transition;
}

void LeaderElection::AfterStepDown() {
  // Learn the new leader now rather than at the next campaign, so the calls
  // woken below can name it.
  absl::StatusOr<std::optional<LeaderRecord>> leader = store_.CurrentLeader();
  if (leader.ok() && leader->has_value() && (*leader)->coordinator_id != options_.coordinator_id) {
    absl::MutexLock lock(&mu_);
    if (!leader_) known_leader_ = **leader;
  }
  if (options_.on_stepped_down) options_.on_stepped_down();
}

LeaderElection::Transition LeaderElection::StepOnce() {
  int64_t epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    if (leader_ && clock_.NowMs() >= valid_until_ms_) {
      StepDownLocked("lease not renewed in time");
      return Transition::kSteppedDown;
    }
    epoch = leader_ ? epoch_ : 0;
  }
  // The store is called without the lock: CurrentTerm() must stay cheap for
  // the RPC threads while a renewal waits on the network.
  const int64_t sent_at = clock_.NowMs();
  if (epoch != 0) {
    absl::StatusOr<bool> renewed =
        store_.RenewLeadership(options_.coordinator_id, epoch, options_.lease_ms);
    absl::MutexLock lock(&mu_);
    if (!leader_ || epoch_ != epoch) return Transition::kNone;  // stepped down meanwhile
    if (!renewed.ok()) {
      // Unknown outcome: better a short gap than two leaders.
      StepDownLocked(absl::StrCat("renewal failed: ", renewed.status().ToString()));
      return Transition::kSteppedDown;
    }
    if (!*renewed) {
      StepDownLocked("lease taken over");
      return Transition::kSteppedDown;
    }
    valid_until_ms_ = sent_at + options_.lease_ms;
    return Transition::kNone;
  }
  absl::StatusOr<CampaignOutcome> outcome =
      store_.Campaign(options_.coordinator_id, options_.advertise_address, options_.lease_ms);
  if (!outcome.ok()) {
    spdlog::warn("leadership campaign failed coordinator={} error={}", options_.coordinator_id,
                 outcome.status().ToString());
    return Transition::kNone;
  }
  if (!outcome->won) {
    absl::MutexLock lock(&mu_);
    if (known_leader_.coordinator_id != outcome->leader.coordinator_id ||
        known_leader_.epoch != outcome->leader.epoch) {
      spdlog::info("leadership standby coordinator={} leader={} leader_epoch={} leader_address={}",
                   options_.coordinator_id, outcome->leader.coordinator_id, outcome->leader.epoch,
                   outcome->leader.address);
    }
    known_leader_ = outcome->leader;
    return Transition::kNone;
  }
  if (options_.on_elected) options_.on_elected(outcome->leader.epoch);
  absl::MutexLock lock(&mu_);
  leader_ = true;
  epoch_ = outcome->leader.epoch;
  valid_until_ms_ = sent_at + options_.lease_ms;
  known_leader_ = outcome->leader;
  spdlog::info("leadership elected coordinator={} epoch={} address={} lease_ms={}",
               options_.coordinator_id, epoch_, options_.advertise_address, options_.lease_ms);
  return Transition::kElected;
}

void LeaderElection::StepDownLocked(const std::string& reason) {
  spdlog::warn("leadership lost coordinator={} epoch={} reason=\"{}\"", options_.coordinator_id,
               epoch_, reason);
  leader_ = false;
  valid_until_ms_ = 0;
  // Whoever leads now is learnt at the next campaign.
  known_leader_ = LeaderRecord{};
}

absl::StatusOr<int64_t> NotCampaigningYet::CurrentTerm() const {
  return NotLeaderError("not the leader: this coordinator is starting and has not campaigned yet");
}

absl::StatusOr<int64_t> LeaderElection::CurrentTerm() const {
  absl::MutexLock lock(&mu_);
  if (leader_ && clock_.NowMs() < valid_until_ms_) return epoch_;
  if (known_leader_.coordinator_id.empty() ||
      known_leader_.coordinator_id == options_.coordinator_id) {
    return NotLeaderError(absl::StrCat("not the leader: coordinator ", options_.coordinator_id,
                                       " is standing by and no leader is known yet"));
  }
  return NotLeaderError(absl::StrCat("not the leader: coordinator ", options_.coordinator_id,
                                     " is standing by; leader_address=", known_leader_.address,
                                     " leader_epoch=", known_leader_.epoch));
}

void LeaderElection::OnFenced(const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    if (!leader_) return;
    StepDownLocked(absl::StrCat("store refused a write: ", why.ToString()));
  }
  AfterStepDown();
}

LeaderRecord LeaderElection::known_leader() const {
  absl::MutexLock lock(&mu_);
  return known_leader_;
}

void LeaderElection::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    while (!stopping_.load()) {
      Step();
      for (int64_t waited = 0; waited < renew_interval_ms_ && !stopping_.load(); waited += 20) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });
}

void LeaderElection::Stop(bool resign) {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (!resign) return;
  int64_t epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!leader_) return;
    epoch = epoch_;
    leader_ = false;
  }
  if (absl::Status st = store_.Resign(options_.coordinator_id, epoch); !st.ok()) {
    spdlog::warn("leadership resign failed coordinator={} epoch={} error={}",
                 options_.coordinator_id, epoch, st.ToString());
  } else {
    spdlog::info("leadership resigned coordinator={} epoch={}", options_.coordinator_id, epoch);
  }
}

}  // namespace sluice

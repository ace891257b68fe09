#include "cli/failover_operator_api.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/coordinator_addresses.h"
#include "spdlog/spdlog.h"

namespace sluice {

FailoverOperatorApi::FailoverOperatorApi(std::vector<std::string> addresses, Factory factory)
    : factory_(std::move(factory)), addresses_(std::move(addresses)) {}

absl::StatusOr<OperatorApi*> FailoverOperatorApi::ApiFor(const std::string& address) {
  auto it = apis_.find(address);
  if (it == apis_.end()) {
    absl::StatusOr<std::unique_ptr<OperatorApi>> made = factory_(address);
    if (!made.ok()) return made.status();
    it = apis_.emplace(address, std::move(*made)).first;
  }
  return it->second.get();
}

std::optional<size_t> FailoverOperatorApi::Next(const absl::Status& failed,
                                                const std::vector<bool>& tried) {
  const std::string hint = LeaderAddressHint(failed);
  if (!hint.empty()) {
    const auto known = std::find(addresses_.begin(), addresses_.end(), hint);
    if (known == addresses_.end()) {
      addresses_.push_back(hint);  // a leader outside the list (e.g. a pod's --advertise)
      return addresses_.size() - 1;
    }
    const size_t i = static_cast<size_t>(known - addresses_.begin());
    if (!tried[i]) return i;
    // A stale hint (that address already failed): go on through the list.
  }
  for (size_t step = 1; step < addresses_.size(); ++step) {
    const size_t i = (current_ + step) % addresses_.size();
    if (!tried[i]) return i;
  }
  return std::nullopt;
}

template <typename T>
absl::StatusOr<T> FailoverOperatorApi::Call(
    absl::FunctionRef<absl::StatusOr<T>(OperatorApi&)> call) {
  std::vector<bool> tried(addresses_.size(), false);
  while (true) {
    absl::StatusOr<OperatorApi*> api = ApiFor(addresses_[current_]);
    if (!api.ok()) return api.status();
    absl::StatusOr<T> result = call(**api);
    if (result.ok() || result.status().code() != absl::StatusCode::kUnavailable) return result;
    tried[current_] = true;
    const std::optional<size_t> next = Next(result.status(), tried);
    if (!next) return result;
    tried.resize(addresses_.size(), false);
    spdlog::warn("coordinator {} unavailable ({}); trying {}", addresses_[current_],
                 result.status().ToString(), addresses_[*next]);
    current_ = *next;
  }
}

absl::StatusOr<ImportResult> FailoverOperatorApi::Import(const std::vector<PhaseSpec>& phases) {
  return Call<ImportResult>([&](OperatorApi& api) { return api.Import(phases); });
}

absl::StatusOr<SessionRecord> FailoverOperatorApi::StartSession(const SessionSettings& settings,
                                                                const std::string& session_id,
                                                                bool allow_empty) {
  return Call<SessionRecord>(
      [&](OperatorApi& api) { return api.StartSession(settings, session_id, allow_empty); });
}

absl::StatusOr<SessionRecord> FailoverOperatorApi::StopSession(const std::string& session_id,
                                                               const std::string& reason) {
  return Call<SessionRecord>([&](OperatorApi& api) { return api.StopSession(session_id, reason); });
}

absl::StatusOr<CoordinatorStatus> FailoverOperatorApi::Status(bool explain_skips) {
  return Call<CoordinatorStatus>(
      [explain_skips](OperatorApi& api) { return api.Status(explain_skips); });
}

absl::StatusOr<ImportResult> FailoverOperatorApi::ImportChunks(
    const std::function<absl::Status(std::vector<PhaseSpec>*)>& next) {
  std::optional<std::vector<PhaseSpec>> first;  // kept to replay on another coordinator
  bool replayable = true;
  return Call<ImportResult>([&](OperatorApi& api) -> absl::StatusOr<ImportResult> {
    bool first_given = false;
    absl::StatusOr<ImportResult> result =
        api.ImportChunks([&](std::vector<PhaseSpec>* chunk) -> absl::Status {
          if (!first_given) {
            first_given = true;
            if (!first) {
              first.emplace();
              if (absl::Status s = next(&*first); !s.ok()) return s;
            }
            *chunk = *first;
            return absl::OkStatus();
          }
          replayable = false;
          return next(chunk);
        });
    if (!result.ok() && result.status().code() == absl::StatusCode::kUnavailable && !replayable) {
      return absl::AbortedError(absl::StrCat(result.status().message(),
                                             " (an import stream cannot be replayed on another "
                                             "coordinator: import again, which is idempotent)"));
    }
    return result;
  });
}

absl::StatusOr<LeasingPause> FailoverOperatorApi::Resume(const std::string& session_id) {
  return Call<LeasingPause>([&](OperatorApi& api) { return api.Resume(session_id); });
}

absl::StatusOr<std::string> FailoverOperatorApi::ReportJson(const std::string& session_id) {
  return Call<std::string>([&](OperatorApi& api) { return api.ReportJson(session_id); });
}

absl::StatusOr<std::pair<std::vector<FingerprintInfo>, int32_t>>
FailoverOperatorApi::Fingerprints() {
  return Call<std::pair<std::vector<FingerprintInfo>, int32_t>>(
      [](OperatorApi& api) { return api.Fingerprints(); });
}

absl::StatusOr<std::string> FailoverOperatorApi::Unblock(const std::string& fingerprint) {
  return Call<std::string>([&](OperatorApi& api) { return api.Unblock(fingerprint); });
}

absl::StatusOr<LeasePlan> FailoverOperatorApi::Plan(const SessionSettings& settings,
                                                    int64_t limit) {
  return Call<LeasePlan>([&](OperatorApi& api) { return api.Plan(settings, limit); });
}

}  // namespace sluice

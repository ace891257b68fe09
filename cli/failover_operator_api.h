// An OperatorApi over several coordinator addresses (--coordinator a:1,b:2),
// one leading and the others standing by: a call goes to the current
// address; when it fails with Unavailable (the coordinator is down, or a
// standby answers "not the leader"), it is retried at the leader that error
// names ("leader_address=HOST:PORT", also outside the list), else at the next
// address not tried yet, so every address is tried at most once per call.
// Later calls start at the address that answered (`sluice watch` keeps
// following the leader).
//
// DeadlineExceeded is not retried: a mutating call (import, session start)
// may have been applied by the coordinator that timed out, and the operator
// should look before repeating it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "cli/operator_api.h"

namespace sluice {

class FailoverOperatorApi final : public OperatorApi {
 public:
  // Makes the API of one address; an error (bad TLS options) ends the call.
  using Factory =
      std::function<absl::StatusOr<std::unique_ptr<OperatorApi>>(const std::string& address)>;

  // `addresses` must not be empty. APIs are made on first use.
  FailoverOperatorApi(std::vector<std::string> addresses, Factory factory);

  absl::StatusOr<ImportResult> Import(const std::vector<PhaseSpec>& phases) override;
  // A stream cannot be replayed: it moves to another coordinator only while
  // nothing past its first chunk was read; later it fails (Aborted: import
  // again, nothing was imported).
  absl::StatusOr<ImportResult> ImportChunks(
      const std::function<absl::Status(std::vector<PhaseSpec>*)>& next) override;
  absl::StatusOr<SessionRecord> StartSession(const SessionSettings& settings,
                                             const std::string& session_id,
                                             bool allow_empty) override;
  absl::StatusOr<SessionRecord> StopSession(const std::string& session_id,
                                            const std::string& reason) override;
  absl::StatusOr<CoordinatorStatus> Status(bool explain_skips) override;
  absl::StatusOr<LeasingPause> Resume(const std::string& session_id) override;
  absl::StatusOr<std::string> ReportJson(const std::string& session_id) override;
  absl::StatusOr<std::pair<std::vector<FingerprintInfo>, int32_t>> Fingerprints() override;
  absl::StatusOr<std::string> Unblock(const std::string& fingerprint) override;
  absl::StatusOr<LeasePlan> Plan(const SessionSettings& settings, int64_t limit) override;

  const std::string& current_address() const { return addresses_[current_]; }

 private:
  template <typename T>
  absl::StatusOr<T> Call(absl::FunctionRef<absl::StatusOr<T>(OperatorApi&)> call);
  absl::StatusOr<OperatorApi*> ApiFor(const std::string& address);
  // The next address to try after `failed` at the current one, if any.
  std::optional<size_t> Next(const absl::Status& failed, const std::vector<bool>& tried);

  const Factory factory_;
  std::vector<std::string> addresses_;  // grows by leaders named outside the list
  std::map<std::string, std::unique_ptr<OperatorApi>> apis_;
  size_t current_ = 0;
};

}  // namespace sluice

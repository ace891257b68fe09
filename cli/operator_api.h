// What the operator CLI needs from a coordinator, reachable two ways: on a
// store directly (--store URL, no server involved) or through a running
// coordinator (--coordinator ADDR, over gRPC). Both go through the same
// Coordinator validation.
#pragma once

#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/channel.h"
#include "coordinator/coordinator.h"

namespace sluice {

class OperatorApi {
 public:
  virtual ~OperatorApi() = default;
  virtual absl::StatusOr<ImportResult> Import(const std::vector<PhaseSpec>& phases) = 0;
  // One import fed a chunk at a time (Coordinator::ImportBacklogChunks): `next`
  // replaces *chunk with the next phases, an empty chunk ends. The default
  // gathers every chunk and calls Import: all or nothing, but not lean.
  virtual absl::StatusOr<ImportResult> ImportChunks(
      const std::function<absl::Status(std::vector<PhaseSpec>*)>& next) {
    std::vector<PhaseSpec> all;
    std::vector<PhaseSpec> chunk;
    while (true) {
      if (absl::Status s = next(&chunk); !s.ok()) return s;
      if (chunk.empty()) return Import(all);
      std::move(chunk.begin(), chunk.end(), std::back_inserter(all));
    }
  }
  // allow_empty: start even when the store holds no phases (else
  // FailedPrecondition; see Coordinator::StartSession).
  virtual absl::StatusOr<SessionRecord> StartSession(const SessionSettings& settings,
                                                     const std::string& session_id,
                                                     bool allow_empty) = 0;
  virtual absl::StatusOr<SessionRecord> StopSession(const std::string& session_id,
                                                    const std::string& reason) = 0;
  // explain_skips: also fill CoordinatorStatus::skipped (costlier).
  virtual absl::StatusOr<CoordinatorStatus> Status(bool explain_skips) = 0;
  // Ends a pause of leasing; returns the pause that ended.
  virtual absl::StatusOr<LeasingPause> Resume(const std::string& session_id) = 0;
  // The session report as JSON; empty session_id: the latest session.
  virtual absl::StatusOr<std::string> ReportJson(const std::string& session_id) = 0;
  // The repeat rule's fingerprints and the threshold of the latest session.
  virtual absl::StatusOr<std::pair<std::vector<FingerprintInfo>, int32_t>> Fingerprints() = 0;
  virtual absl::StatusOr<std::string> Unblock(const std::string& fingerprint) = 0;
  virtual absl::StatusOr<LeasePlan> Plan(const SessionSettings& settings, int64_t limit) = 0;
};

// Opens `store_url` and serves the calls with an in-process Coordinator
// whose run families follow `family_pattern` (CoordinatorConfig::
// family_pattern: "" is the default rule). InvalidArgument for a bad
// pattern, checked before the store is opened.
absl::StatusOr<std::unique_ptr<OperatorApi>> OpenDirectOperator(
    const std::string& store_url, const std::string& family_pattern = "");
// Uses an existing Coordinator (for `sluice drain`).
std::unique_ptr<OperatorApi> WrapCoordinator(Coordinator& coordinator);
// Talks to the coordinator at options.address over gRPC (TLS and the bearer
// token per `options`). A comma-separated list of HOST:PORT (active/standby
// coordinators) follows the leader (FailoverOperatorApi). InvalidArgument
// for bad TLS/token options or a malformed list.
absl::StatusOr<std::unique_ptr<OperatorApi>> ConnectOperator(const ChannelOptions& options);

}  // namespace sluice

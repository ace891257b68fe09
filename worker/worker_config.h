// The worker's configuration (flags of sluice-worker), shared by the agent
// and the phase executor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/command_template.h"

namespace sluice {

struct WorkerConfig {
  std::string worker_id;
  std::string host;
  int32_t slots = 1;
  std::vector<std::string> labels;
  std::string version;
  std::string cluster_id;                  // --cluster-id: checked at registration ("" = unchecked)
  std::optional<CommandTemplate> command;  // required: the worker's own --exec template
  std::map<std::string, std::string> env;  // --env K=V, passed to every phase
  std::string workdir;                     // phases run here ("" = current directory)
  std::string log_dir = ".sluice/logs";    // per-attempt stdout/stderr/telemetry files
  int64_t grace_ms = 10'000;               // SIGTERM -> SIGKILL
  int64_t drain_timeout_ms = 60'000;       // how long running phases may finish on SIGTERM
  int64_t lease_wait_ms = 10'000;          // long-poll bound asked for
  size_t tail_bytes = 4096;                // stdout/stderr tail kept in a report
  // Optional: a command printing an integer count of telemetry events, run
  // before and after each phase; the delta is added to the reported events.
  // Exact only with one slot (concurrent phases share the counter).
  std::vector<std::string> telemetry_probe;
  // --telemetry-probe-timeout: a probe still running after this long is
  // stopped, and the attempt's telemetry is reported as unknown.
  int64_t telemetry_probe_timeout_ms = 30'000;
  int64_t report_give_up_ms = 300'000;  // stop retrying a report after this long at shutdown
  // Finished outcomes not yet answered by the coordinator ("" = LOG_DIR/spool).
  std::string spool_dir;
  // Optional gate: while it returns false (e.g. the worker's --service is
  // unhealthy) the worker leases nothing; running phases go on. Asked again
  // every kReadyRecheckMs while it is false.
  std::function<bool()> ready;
  // Stop leasing (Run() returns FailedPrecondition: exit 3) after this many
  // phases in a row could not be started (kStartFailed): a misconfigured
  // worker must not burn through the backlog. 0 = never stop.
  int32_t max_start_failures = 3;

  // InvalidArgument naming the flag of the first bad value.
  absl::Status Validate() const;
};

inline constexpr int64_t kReadyRecheckMs = 200;

}  // namespace sluice

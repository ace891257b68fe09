#include "coordinator/request_checks.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/coordinator.h"
#include "coordinator/store/report_limits.h"

namespace sluice {

absl::Status CheckBytes(const std::string& field, const std::string& value, size_t max) {
  if (value.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " bytes (at most ", max, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckWorker(const WorkerInfo& worker) {
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", worker.worker_id));
  if (worker.slots <= 0 || worker.slots > 1024) {
    return absl::InvalidArgumentError("slots must be between 1 and 1024");
  }
  SLUICE_RETURN_IF_ERROR(CheckBytes("host", worker.host, 256));
  SLUICE_RETURN_IF_ERROR(CheckBytes("version", worker.version, 128));
  for (const std::string& label : worker.labels) SLUICE_RETURN_IF_ERROR(ValidateId("label", label));
  return absl::OkStatus();
}

absl::Status CheckReportBatchSize(size_t reports) {
  if (reports >= 1 && reports <= kMaxReportsPerBatch) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("a report batch holds at least 1 and at most ",
                                                 kMaxReportsPerBatch, " reports, not ", reports));
}

absl::Status CheckReport(const AttemptReport& report, const CoordinatorConfig& config) {
  SLUICE_RETURN_IF_ERROR(ValidateId("worker_id", report.worker_id));
  SLUICE_RETURN_IF_ERROR(ValidateId("lease_id", report.lease_id));
  if (report.outcome == Outcome::kLost) {
    return absl::InvalidArgumentError("outcome 'lost' is recorded by the coordinator only");
  }
  // Counters and their sums bounded before anything is written.
  SLUICE_RETURN_IF_ERROR(CheckReportCounters(report));
  for (const auto& type_count : report.telemetry_by_type) {
    SLUICE_RETURN_IF_ERROR(CheckBytes("telemetry type", type_count.first, 128));
  }
  SLUICE_RETURN_IF_ERROR(CheckBytes("stdout_tail", report.stdout_tail, config.max_tail_bytes));
  SLUICE_RETURN_IF_ERROR(CheckBytes("stderr_tail", report.stderr_tail, config.max_tail_bytes));
  return CheckBytes("error_text", report.error_text, config.max_error_text_bytes);
}

absl::Status CheckBacklog(const std::vector<PhaseSpec>& phases, const CoordinatorConfig& config,
                          size_t first_number) {
  if (phases.empty()) return absl::InvalidArgumentError("backlog has no phases");
  for (size_t i = 0; i < phases.size(); ++i) {
    const PhaseSpec& p = phases[i];
    absl::Status st = ValidateId("run_id", p.run_id);
    if (st.ok()) st = ValidateId("phase_id", p.phase_id);
    for (const std::string& label : p.labels) {
      if (st.ok()) st = ValidateId("label", label);
    }
    if (st.ok()) st = CheckBytes("last_error", p.last_error, config.max_error_text_bytes);
    if (st.ok()) st = CheckBytes("metadata_json", p.metadata_json, 64 * 1024);
    if (!st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("phase #", first_number + i, ": ", st.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace sluice

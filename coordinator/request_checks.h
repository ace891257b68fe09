// Argument checks of the coordinator's worker and operator calls: what a
// caller may send, independent of any state. Each returns InvalidArgument
// naming the field and the limit, or OK. Pure and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model.h"

namespace sluice {

struct CoordinatorConfig;

// `field` is at most `max` bytes long.
absl::Status CheckBytes(const std::string& field, const std::string& value, size_t max);
// Register: id, slots 1..1024, host and version sizes, labels.
absl::Status CheckWorker(const WorkerInfo& worker);
// Report: ids, an outcome a worker may report, counters within
// report_limits.h (sums included), tail and error sizes.
absl::Status CheckReport(const AttemptReport& report, const CoordinatorConfig& config);
// ReportBatch: 1 to kMaxReportsPerBatch (common/model.h) reports.
absl::Status CheckReportBatchSize(size_t reports);
// ImportBacklog: at least one phase; ids, labels and sizes of each, the
// error naming the phase ("phase #3: ..."; numbered from first_number, for a
// chunk of a longer backlog).
absl::Status CheckBacklog(const std::vector<PhaseSpec>& phases, const CoordinatorConfig& config,
                          size_t first_number = 1);

}  // namespace sluice

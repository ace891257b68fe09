// The worker's on-disk spool of finished outcomes: one JSON file per lease id
// (DIR/LEASE_ID.json) holding the AttemptReport, written before the first
// delivery attempt and removed once the coordinator has answered it (with any
// disposition). Outcomes left by a worker that died or gave up delivering are
// delivered again by the next start of a worker on the same directory; the
// coordinator answers a report it already has `duplicate`, so re-delivery is
// safe.
//
// Files are written atomically: DIR/LEASE_ID.json.tmp, then rename. Put()
// does not fsync: the file survives the worker process's death (SIGKILL, a
// crash) but not its host's; Sync() makes it survive that too, and delivery
// calls it once the first attempt to report has failed (an outage, when an
// outcome may wait in the spool for long). A host crash in the ~1 ms between
// Put() and the coordinator's answer loses the outcome, like a crash while
// the phase ran: the lease expires and the phase runs again on the requeue
// budget. Nothing is counted twice. A leftover .tmp (a crash mid-write) is ignored by List()
// and overwritten by the next Put() of that lease. A file List() cannot parse
// is logged, renamed to LEASE_ID.json.bad (kept for a person to look at) and
// skipped.
//
// Thread-safety: every method may be called from several threads, as long as
// no two calls concern the same lease id at once.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model.h"

namespace sluice {

// JSON form of a report (also used by tests). Parse errors name the field.
std::string SerializeAttemptReport(const AttemptReport& report);
absl::StatusOr<AttemptReport> ParseAttemptReport(const std::string& json);

class OutcomeSpool {
 public:
  explicit OutcomeSpool(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory. FailedPrecondition naming it when that fails.
  absl::Status Init() const;

  // Stores `report` under its lease id (atomically, not synced), replacing
  // an earlier one. InvalidArgument for a lease id that is not a valid
  // identifier; Internal (with errno text) when the file cannot be written.
  absl::Status Put(const AttemptReport& report) const;

  // Makes the lease's file and its name durable (fsync of the file and the
  // directory). Internal (with errno text) on failure, NotFound without one.
  absl::Status Sync(const std::string& lease_id) const;

  // Deletes the lease's file; OK when there is none.
  absl::Status Remove(const std::string& lease_id) const;

  // Renames the lease's file to LEASE_ID.json.SUFFIX so List() skips it but
  // a person can still read it (e.g. a report the coordinator rejected).
  absl::Status Quarantine(const std::string& lease_id, const std::string& suffix) const;

  // Every spooled report, in file-name order. Unparsable files are renamed
  // .bad, logged and skipped; .tmp files are ignored.
  absl::StatusOr<std::vector<AttemptReport>> List() const;

  const std::string& dir() const { return dir_; }

 private:
  std::string PathOf(const std::string& lease_id) const;

  std::string dir_;
};

}  // namespace sluice

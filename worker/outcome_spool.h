// The worker's on-disk spool of finished outcomes: one JSON file per lease id
// (DIR/LEASE_ID.json) holding the AttemptReport, written before the first
// delivery attempt and removed once the coordinator has answered it (with any
// disposition). Outcomes left by a worker that died or gave up delivering are
// delivered again by the next start of a worker on the same directory; the
// coordinator answers a report it already has `duplicate`, so re-delivery is
// safe.
//
// Files are written atomically: a file is written in full under a name List()
// skips, then renamed to DIR/LEASE_ID.json. Answered outcomes' files are not
// deleted but renamed back to such a name (DIR/.free.PID.N) and written over
// by a later Put(), so a drain creates and deletes no inode per phase (on a
// journal-less ext4 each new inode is checked against the recently deleted
// ones: up to ~1.5 ms a phase). At most max_free_files are kept; more are
// deleted, and a Put() with none free writes DIR/LEASE_ID.json.tmp. Put()
// does not fsync: the file survives the worker process's death (SIGKILL, a
// crash) but not its host's; Sync() makes it survive that too, and delivery
// calls it once the first attempt to report has failed (an outage, when an
// outcome may wait in the spool for long). A host crash in the ~1 ms between
// Put() and the coordinator's answer loses the outcome, like a crash while
// the phase ran: the lease expires and the phase runs again on the requeue
// budget. Nothing is counted twice. (A reused file may then hold an earlier,
// answered outcome under the new name: List() sets it aside as .bad, as it
// does any file whose content names another lease.) A leftover .tmp or free
// file (a crash mid-write) is ignored by List(); a later Put() of that lease
// overwrites the .tmp, and Init() deletes free files. A file List() cannot
// parse is logged, renamed to LEASE_ID.json.bad (kept for a person to look
// at) and skipped.
//
// Thread-safety: every method may be called from several threads, as long as
// no two calls concern the same lease id at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/model.h"

namespace sluice {

// JSON form of a report (also used by tests). Parse errors name the field.
std::string SerializeAttemptReport(const AttemptReport& report);
absl::StatusOr<AttemptReport> ParseAttemptReport(const std::string& json);

class OutcomeSpool {
 public:
  // Answered outcomes' files kept for reuse: one per report in flight is
  // enough, so a few per slot.
  static constexpr size_t kDefaultMaxFreeFiles = 64;

  // `max_free_files` 0: no reuse, a new file per Put() (bench/spool_bench).
  explicit OutcomeSpool(std::string dir, size_t max_free_files = kDefaultMaxFreeFiles)
      : dir_(std::move(dir)), max_free_files_(max_free_files) {}

  // Creates the directory and deletes the free files an earlier worker left
  // (which of them a live one still uses is not known here). FailedPrecondition
  // naming the directory when it cannot be created.
  absl::Status Init() const;

  // Stores `report` under its lease id (atomically, not synced), replacing
  // an earlier one. InvalidArgument for a lease id that is not a valid
  // identifier; Internal (with errno text) when the file cannot be written.
  absl::Status Put(const AttemptReport& report) const;

  // Makes the lease's file and its name durable (fsync of the file and the
  // directory). Internal (with errno text) on failure, NotFound without one.
  absl::Status Sync(const std::string& lease_id) const;

  // Takes the lease's file out of the spool (renamed to a free file, or
  // deleted when max_free_files are free already); OK when there is none.
  absl::Status Remove(const std::string& lease_id) const;

  // Renames the lease's file to LEASE_ID.json.SUFFIX so List() skips it but
  // a person can still read it (e.g. a report the coordinator rejected).
  absl::Status Quarantine(const std::string& lease_id, const std::string& suffix) const;

  // Every spooled report, in file-name order. Unparsable files are renamed
  // .bad, logged and skipped; .tmp files are ignored.
  absl::StatusOr<std::vector<AttemptReport>> List() const;

  const std::string& dir() const { return dir_; }

  // Free files kept now (tests).
  size_t free_files() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::string PathOf(const std::string& lease_id) const;
  // A free file to write over, or "" when none is kept.
  std::string TakeFree() const ABSL_LOCKS_EXCLUDED(mu_);
  // A new name for a free file, or "" when max_free_files are kept or
  // promised; a name handed out is promised until GiveBackName.
  std::string PromiseFreeName() const ABSL_LOCKS_EXCLUDED(mu_);
  // Ends a promise: `path` is free now when `kept`.
  void GiveBackName(std::string path, bool kept) const ABSL_LOCKS_EXCLUDED(mu_);

  std::string dir_;
  const size_t max_free_files_;
  // The free files are the const methods' cache, thread-safe (see above).
  mutable absl::Mutex mu_;
  mutable std::vector<std::string> free_ ABSL_GUARDED_BY(mu_);
  mutable size_t promised_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t names_made_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sluice

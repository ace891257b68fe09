// The web view's JSON, built from the Coordinator without any HTTP: the
// handlers in web_http.h parse a request, call one method here and send the
// result. Documented in docs/web.md; keys are stable.
//
// Cost per call (nothing reads every phase or every attempt of the store;
// measured at 1M phases and 10k runs in docs/web.md):
//   Overview           Coordinator::Status() (counters, workers, leases) plus
//                      the coordinator's outcome and effort counters.
//   Sample             phase counters plus those counters (the history).
//   Workers            Coordinator::Status().
//   Runs               one page from StateStore::ListRunStatsPage (filtered,
//                      sorted and cut by the store over its run aggregates)
//                      and the skip reasons of that page's runs only. By
//                      family, by family name or state=skipped: the last
//                      snapshot of every run (RunTable), taken in the
//                      background while someone looks, never by the request.
//   Fingerprints       the failure policy's in-memory table.
//   Phase              GetPhase plus one page of StateStore::ListPhaseAttempts
//                      (an index by phase; every session's attempts).
// Lists are paginated (offset, limit <= kMaxPageSize).
//
// Errors: InvalidArgument for a bad parameter (with its name), NotFound for
// an unknown phase or fingerprint, FailedPrecondition for a resume without a
// pause, and whatever the Coordinator returns (Unavailable: store down or not
// the leader).
//
// Thread-safety: every method may be called from many threads. Ownership:
// `coordinator` and `clock` must outlive the WebApi.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/run_family.h"
#include "coordinator/coordinator.h"
#include "coordinator/web/run_table.h"
#include "coordinator/web/web_history.h"
#include "nlohmann/json.hpp"

namespace sluice {

inline constexpr int64_t kDefaultPageSize = 50;
inline constexpr int64_t kMaxPageSize = 500;

struct PageQuery {
  int64_t offset = 0;
  int64_t limit = kDefaultPageSize;
};

struct RunsQuery {
  PageQuery page;
  bool by_family = false;  // one row per run family instead of per run
  std::string contains;    // keep rows whose run id or family contains this
  // "" (any), "active" (pending or leased phases), "done" (nothing pending
  // or leased), "failed" (some phase failed for good), "skipped" (has a
  // skip reason).
  std::string state;
  // run_id (default), family, attempts, successes, events, yield, pending,
  // failed, run_ms.
  std::string sort = "run_id";
  bool descending = false;
};

struct WebApiOptions {
  // True when a background thread calls RefreshRunTable (CoordinatorHost):
  // the views of every run then read its snapshot, never the store. False:
  // they read the store on each request (tests, tools).
  bool background_run_table = false;
};

class WebApi {
 public:
  WebApi(Coordinator& coordinator, const Clock& clock, WebApiOptions options = {});

  // The background thread's step: takes a new snapshot of every run when one
  // is due (RunTable::RefreshIfDue).
  absl::Status RefreshRunTable() { return run_table_.RefreshIfDue(); }
  uint64_t run_table_loads() const { return run_table_.loads(); }

  // Adds a sample of the counters to the history (also done by Overview);
  // the host calls it periodically so the charts have a shape before the
  // page is opened.
  absl::Status Sample();

  absl::StatusOr<nlohmann::json> Overview();
  absl::StatusOr<nlohmann::json> Runs(const RunsQuery& query);
  absl::StatusOr<nlohmann::json> Fingerprints(const PageQuery& page);
  // `serving`: the gRPC server's health, shown with the workers.
  absl::StatusOr<nlohmann::json> Workers(bool serving);
  absl::StatusOr<nlohmann::json> Phase(const std::string& run_id, const std::string& phase_id,
                                       const PageQuery& page);

  // Actions (the HTTP layer checks the admin token first).
  absl::StatusOr<nlohmann::json> Unblock(const std::string& fingerprint);
  absl::StatusOr<nlohmann::json> Resume();

  // Checks a page request; InvalidArgument naming `offset` or `limit`.
  static absl::Status ValidatePage(const PageQuery& page);

 private:
  absl::StatusOr<WebSample> TakeSample(const PhaseCounts& phases);
  // The runs page for every query the store can answer by itself.
  absl::StatusOr<nlohmann::json> RunsFromStorePage(const RunsQuery& query);
  // The runs page of the views that need every run, from `table`.
  nlohmann::json RunsFromSnapshot(const RunsQuery& query, const RunTableSnapshot& table) const;
  // Every run's aggregates and run-level skips (RunTable's loader).
  absl::StatusOr<RunTableSnapshot> ReadRunTable();

  Coordinator& coordinator_;
  const Clock& clock_;
  RunFamilyRule family_rule_;
  WebHistory history_;
  RunTable run_table_;
};

}  // namespace sluice

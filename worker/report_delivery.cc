#include "worker/report_delivery.h"

#include "spdlog/spdlog.h"
#include "worker/backoff.h"

namespace sluice {

ReportDelivery::ReportDelivery(const OutcomeSpool& spool, CoordinatorClient& client,
                               const Clock& clock, Options options)
    : spool_(spool), client_(client), clock_(clock), options_(options) {}

void ReportDelivery::Abandon() { abandoned_.Notify(); }

void ReportDelivery::Deliver(const AttemptReport& report) {
  if (absl::Status st = spool_.Put(report); !st.ok()) {
    spdlog::error("cannot spool outcome lease={} ({}); it is kept in memory only", report.lease_id,
                  st.ToString());
  }
  DeliverSpooled(report);
}

void ReportDelivery::DeliverSpooled(const AttemptReport& report) {
  const int64_t started = clock_.NowMs();
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<ReportDisposition> d = client_.Report(report);
    if (d.ok()) {
      ++delivered_;
      if (*d != ReportDisposition::kAccepted) {
        spdlog::warn("report lease={} answered {}", report.lease_id, ReportDispositionName(*d));
      }
      // Answered (any disposition): the coordinator has it or never will.
      if (absl::Status st = spool_.Remove(report.lease_id); !st.ok()) {
        spdlog::warn("cannot remove spooled outcome lease={}: {}", report.lease_id, st.ToString());
      }
      return;
    }
    // Not answered at once: the outcome may wait in the spool for long, so
    // make it survive a host crash too (Put() does not sync; see OutcomeSpool).
    if (attempt == 0) {
      if (absl::Status st = spool_.Sync(report.lease_id); !st.ok() && !absl::IsNotFound(st)) {
        spdlog::warn("cannot sync spooled outcome lease={}: {}", report.lease_id, st.ToString());
      }
    }
    const absl::StatusCode code = d.status().code();
    if (code == absl::StatusCode::kInvalidArgument) {
      // Never acceptable as it is: keep it aside for a person, stop retrying.
      spdlog::error("report lease={} rejected: {}; kept in {} as {}.json.rejected", report.lease_id,
                    d.status().ToString(), spool_.dir(), report.lease_id);
      (void)spool_.Quarantine(report.lease_id, "rejected");
      return;
    }
    if (code == absl::StatusCode::kPermissionDenied || code == absl::StatusCode::kUnauthenticated) {
      // A credentials problem: the next start (fixed) delivers it.
      spdlog::error("report lease={} refused: {}; left in the spool for the next start",
                    report.lease_id, d.status().ToString());
      return;
    }
    if (abandoned_.notified() ||
        (shutting_down_.load() && clock_.NowMs() - started > options_.give_up_ms)) {
      spdlog::error(
          "giving up on report lease={} after {} ms ({}); left in the spool {} for the next start",
          report.lease_id, clock_.NowMs() - started, d.status().ToString(), spool_.dir());
      return;
    }
    const int64_t wait = BackoffMs(attempt, options_.base_ms, options_.cap_ms);
    spdlog::warn("report lease={} failed ({}); retrying in {} ms", report.lease_id,
                 d.status().ToString(), wait);
    if (clock_.WaitFor(abandoned_, wait)) {
      spdlog::error("giving up on report lease={} ({}); left in the spool {} for the next start",
                    report.lease_id, d.status().ToString(), spool_.dir());
      return;
    }
  }
}

}  // namespace sluice

#include "worker/report_delivery.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "worker/backoff.h"

namespace sluice {

ReportDelivery::ReportDelivery(const OutcomeSpool& spool, CoordinatorClient& client,
                               const Clock& clock, Options options)
    : spool_(spool), client_(client), clock_(clock), options_(options) {}

void ReportDelivery::Abandon() { abandoned_.Notify(); }

size_t ReportDelivery::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

absl::StatusOr<ReportDisposition> ReportDelivery::Send(const AttemptReport& report) {
  if (!unary_only_.load()) {
    Attempt mine;
    mine.report = &report;
    absl::MutexLock lock(&mu_);
    queue_.push_back(&mine);
    // Whoever may send a call sends what is queued, its own attempt
    // included unless more than one call's worth is ahead of it.
    while (!mine.answer.has_value()) {
      if (!mine.sent && calls_in_flight_ < options_.max_calls_in_flight) {
        SendNextBatch();  // the queue holds `mine`
      } else {
        answered_.Wait(&mu_);
      }
    }
    if (!mine.unary) return *std::move(mine.answer);
  }
  return client_.Report(report);
}

namespace {

// About what `report` adds to a ReportBatch message.
size_t ApproximateBytes(const AttemptReport& report) {
  size_t bytes = 64 + report.lease_id.size() + report.worker_id.size() + report.stdout_tail.size() +
                 report.stderr_tail.size() + report.error_text.size();
  for (const auto& [type, count] : report.telemetry_by_type) bytes += 16 + type.size();
  return bytes;
}

}  // namespace

std::vector<ReportDelivery::Attempt*> ReportDelivery::TakeBatch() {
  std::vector<Attempt*> batch;
  const std::string worker_id = queue_.front()->report->worker_id;
  size_t bytes = 0;
  for (auto it = queue_.begin(); it != queue_.end() && batch.size() < kMaxReportsPerBatch;) {
    const AttemptReport& report = *(*it)->report;
    if (report.worker_id != worker_id) {  // a call carries one worker's reports
      ++it;
      continue;
    }
    bytes += ApproximateBytes(report);
    if (!batch.empty() && bytes > kMaxBatchBytes) break;
    (*it)->sent = true;
    batch.push_back(*it);
    it = queue_.erase(it);
  }
  return batch;
}

void ReportDelivery::SendNextBatch() {
  const std::vector<Attempt*> batch = TakeBatch();
  const size_t n = batch.size();
  ++calls_in_flight_;
  absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> answers;
  {
    // Not under mu_: attempts keep queuing while the call is in flight. The
    // batch's reports stay valid: their deliveries wait for the answers.
    mu_.Unlock();
    std::vector<AttemptReport> reports;
    reports.reserve(n);
    for (const Attempt* a : batch) reports.push_back(*a->report);
    answers = unary_only_.load() ? absl::UnimplementedError("ReportBatch not used")
                                 : client_.ReportBatch(reports);
    mu_.Lock();
  }
  --calls_in_flight_;
  const bool unimplemented =
      !answers.ok() && answers.status().code() == absl::StatusCode::kUnimplemented;
  if (unimplemented && !unary_only_.exchange(true)) {
    spdlog::warn("the coordinator has no ReportBatch ({}); reporting one outcome per call",
                 answers.status().ToString());
  }
  if (answers.ok() && answers->size() != n) {
    answers = absl::InternalError(
        absl::StrCat("ReportBatch answered ", answers->size(), " of ", n, " reports"));
  }
  for (size_t i = 0; i < n; ++i) {
    Attempt& a = *batch[i];
    a.unary = unimplemented;
    a.answer = answers.ok() ? (*answers)[i] : absl::StatusOr<ReportDisposition>(answers.status());
  }
  answered_.SignalAll();
}

void ReportDelivery::Deliver(const AttemptReport& report) {
  if (absl::Status st = spool_.Put(report); !st.ok()) {
    spdlog::error("cannot spool outcome lease={} ({}); it is kept in memory only", report.lease_id,
                  st.ToString());
  }
  DeliverSpooled(report);
}

void ReportDelivery::DeliverSpooled(const std::vector<AttemptReport>& reports) {
  // Deliveries one after the other would each wait for a call of their own.
  std::atomic<size_t> next{0};
  std::vector<std::jthread> deliveries;
  for (size_t t = 0; t < std::min(reports.size(), kConcurrentRedeliveries); ++t) {
    deliveries.emplace_back([&] {
      for (size_t i = next++; i < reports.size(); i = next++) DeliverSpooled(reports[i]);
    });
  }
}

void ReportDelivery::DeliverSpooled(const AttemptReport& report) {
  const int64_t started = clock_.NowMs();
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<ReportDisposition> d = Send(report);
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

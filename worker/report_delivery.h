// Delivers finished outcomes to the coordinator, durably: each report is
// written to the OutcomeSpool before the first attempt and removed once the
// coordinator answered it (with any disposition: it then has the outcome or
// never will). So neither a coordinator outage nor a worker restart loses
// one; the next start re-delivers what is left (DeliverSpooled).
//
// A delivery retries transient failures with backoff on the Clock seam until
//  - the coordinator answers (the spool file is removed),
//  - it rejects the report as invalid (InvalidArgument: the file is renamed
//    LEASE_ID.json.rejected for a person, and never retried),
//  - it refuses the worker's credentials (PermissionDenied,
//    Unauthenticated: the file stays for the next, fixed, start),
//  - after BeginShutdown(), the delivery has been failing for longer than
//    `give_up_ms` (the file stays), or
//  - Abandon() was called (the file stays).
//
// Thread-safe: any number of deliveries may run at once (one per lease id);
// `spool`, `client` and `clock` must outlive this.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/clock.h"
#include "common/model.h"
#include "worker/coordinator_client.h"
#include "worker/outcome_spool.h"

namespace sluice {

class ReportDelivery {
 public:
  struct Options {
    int64_t give_up_ms = 300'000;  // see BeginShutdown()
    int64_t base_ms = 100;         // first backoff (jittered from base_ms/2)
    int64_t cap_ms = 5'000;
  };

  ReportDelivery(const OutcomeSpool& spool, CoordinatorClient& client, const Clock& clock,
                 Options options);

  // Spools `report`, then delivers it. Blocks until the delivery ends (see
  // above). A report that cannot be spooled is still delivered (logged: it
  // is then kept in memory only).
  void Deliver(const AttemptReport& report);
  // Delivers a report that is already in the spool (left by an earlier run).
  void DeliverSpooled(const AttemptReport& report);

  // Shutdown: from now on a delivery failing for longer than give_up_ms
  // gives up. Running backoffs are not cut short.
  void BeginShutdown() { shutting_down_.store(true); }
  // A fatal error: every delivery gives up at once (a backoff in progress
  // ends now), leaving its outcome in the spool.
  void Abandon();

  // Reports the coordinator answered so far.
  int64_t delivered() const { return delivered_.load(); }

 private:
  const OutcomeSpool& spool_;
  CoordinatorClient& client_;
  const Clock& clock_;
  const Options options_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<int64_t> delivered_{0};
  Wakeup abandoned_{Wakeup::Mode::kLatched};
};

}  // namespace sluice

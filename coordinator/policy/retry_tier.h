// Phase-level ranking (#13). Under retries_last a run's phases come in two
// tiers: untried phases first, then its retry tier (retries, and phases
// whose backlog row says they timed out). The broker asks the store for a
// run's untried phases only (LeaseParams::untried_only) until none fits;
// from then on (UntriedDone) the run is ranked by what tier attempts yield,
// not by what its first attempts yielded, and its tier phases are leased
// when it comes up again at that rank. Otherwise a productive run whose
// untried phases are done keeps its rank and spends the fleet's minutes on
// phases that hung before (each costing the whole timeout).
//
// What tier attempts yield is learnt cluster-wide: the tier's events per
// minute over everyone's, shrunk toward kPriorFactor with kPriorWeight
// pseudo-attempts. The factor multiplies a tier run's expected yield
// (RunPolicyState::retry_tier_factor); it never exceeds 1, so a tier phase
// never outranks the same run's untried ones.
//
// A run leaves the tier at its next grant from the untried tier (a phase
// that failed transiently or was lost is untried again) and on Reset (a new
// term). In memory only.
//
// Thread-compatible: DrainPolicy serialises access.
#pragma once

#include <cstdint>
#include <set>
#include <string>

namespace sluice {

class RetryTier {
 public:
  static constexpr double kPriorFactor = 0.5;
  static constexpr double kPriorWeight = 2.0;  // pseudo-attempts
  static constexpr double kMinFactor = 0.02;
  // Tier leases whose outcome is awaited; a lost lease never reports, so
  // the set is cleared past this size (its outcomes are then not learnt).
  static constexpr size_t kMaxTrackedLeases = 65'536;

  // A grant of `run_id` under `lease_id`; `retry_tier` as the store said.
  void Granted(const std::string& run_id, const std::string& lease_id, bool retry_tier);
  // The store had no untried phase of `run_id` that fitted (asked with
  // LeaseParams::untried_only): its next grant comes from its retry tier.
  void UntriedDone(const std::string& run_id) { runs_.insert(run_id); }
  // The report of `lease_id` was accepted. `phase_verdict`: succeeded,
  // failed (not transient) or timed out (IsPhaseVerdict); anything else, a
  // kill from outside included, teaches nothing.
  void Observe(const std::string& lease_id, bool phase_verdict, int64_t events, int64_t duration_ms,
               bool telemetry_unknown);

  bool InTier(const std::string& run_id) const { return runs_.contains(run_id); }
  // The tier's yield over `events_per_minute` (everyone's), shrunk toward
  // kPriorFactor, in [kMinFactor, 1]; kPriorFactor when nothing yielded yet.
  // `minutes_per_attempt` (everyone's) turns pseudo-attempts into minutes.
  double Factor(double events_per_minute, double minutes_per_attempt) const;
  void Reset();

 private:
  std::set<std::string> runs_;
  std::set<std::string> leases_;
  double events_ = 0;
  double minutes_ = 0;  // with known telemetry
};

}  // namespace sluice

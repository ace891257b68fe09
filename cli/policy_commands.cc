#include "cli/policy_commands.h"

#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/insight/fingerprint_json.h"
#include "coordinator/policy/expected_curve.h"
#include "nlohmann/json.hpp"

namespace sluice {

int CmdFingerprints(OperatorApi& api, bool json) {
  auto result = api.Fingerprints();
  if (!result.ok()) {
    std::cerr << "sluice fingerprints: " << result.status().message() << "\n";
    return result.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 3;
  }
  const auto& [fingerprints, max_repeats] = *result;
  if (json) {
    nlohmann::json j = {{"max_fingerprint_repeats", max_repeats},
                        {"fingerprints", nlohmann::json::array()}};
    for (const FingerprintInfo& f : fingerprints) {
      j["fingerprints"].push_back(FingerprintJson(f, max_repeats));
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (max_repeats > 0) {
    std::cout << absl::StrFormat("%d fingerprints; a fingerprint seen %d times blocks its runs\n",
                                 fingerprints.size(), max_repeats);
  } else {
    std::cout << absl::StrFormat(
        "%d fingerprints; the repeat rule is off (--max-fingerprint-repeats 0): none blocks its "
        "runs\n",
        fingerprints.size());
  }
  for (const FingerprintInfo& f : fingerprints) {
    const bool blocked = FingerprintBlocks(f, max_repeats);
    std::cout << absl::StrFormat("%s %5d x  %-8s runs=%-3d %s\n", f.id, f.count,
                                 blocked ? "BLOCKED" : "", f.runs.size(),
                                 f.fingerprint.substr(0, 110));
  }
  if (!fingerprints.empty()) {
    std::cout << "fix a blocked fingerprint's cause, then: sluice unblock ID\n";
  }
  return 0;
}

int CmdUnblock(OperatorApi& api, const std::string& fingerprint, bool json) {
  auto fp = api.Unblock(fingerprint);
  if (!fp.ok()) {
    std::cerr << "sluice unblock: " << fp.status().message() << "\n";
    const auto code = fp.status().code();
    return code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kNotFound ? 2
                                                                                             : 3;
  }
  if (json) {
    std::cout << nlohmann::json{{"unblocked", *fp}}.dump() << "\n";
  } else {
    std::cout << "unblocked " << *fp << "\n";
  }
  return 0;
}

void PrintPlan(const LeasePlan& plan, bool json) {
  if (json) {
    nlohmann::json j = {{"leases", nlohmann::json::array()},
                        {"excluded", nlohmann::json::array()},
                        {"needs_labels", nlohmann::json::array()}};
    for (const PlannedLease& l : plan.leases) {
      j["leases"].push_back({{"run_id", l.run_id},
                             {"phase_id", l.phase_id},
                             {"attempt", l.attempt},
                             {"why", l.why},
                             {"expected_yield", l.expected_yield}});
    }
    for (const RunDecision& d : plan.excluded) {
      j["excluded"].push_back(
          {{"run_id", d.ranking.run_id}, {"reason", d.excluded_reason}, {"pending", d.pending}});
    }
    for (const PhaseSpec& p : plan.needs_labels) {
      j["needs_labels"].push_back(
          {{"run_id", p.run_id}, {"phase_id", p.phase_id}, {"labels", p.labels}});
    }
    nlohmann::json points = nlohmann::json::array();
    for (const ExpectedCurvePoint& p : plan.curve.points) {
      points.push_back({{"worker_minutes", p.worker_minutes},
                        {"events", p.events},
                        {"phases", p.phases},
                        {"slice_yield", p.slice_yield}});
    }
    j["expected_curve"] = {{"points", std::move(points)},
                           {"runs", plan.curve.runs},
                           {"marginal_yield", plan.curve.marginal_yield},
                           {"left_off_runs", plan.curve.left_off_runs},
                           {"left_off_phases", plan.curve.left_off_phases}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << absl::StrFormat("dry run: %d phases would be leased now, in this order:\n",
                               plan.leases.size());
  int n = 0;
  for (const PlannedLease& l : plan.leases) {
    std::cout << absl::StrFormat("%4d  %s/%s attempt %d  (%s; est. %.2f events/min)\n", ++n,
                                 l.run_id, l.phase_id, l.attempt, l.why, l.expected_yield);
  }
  if (!plan.excluded.empty()) {
    std::cout << "not leased:\n";
    for (const RunDecision& d : plan.excluded) {
      std::cout << absl::StrFormat("  %s (%d pending): %s\n", d.ranking.run_id, d.pending,
                                   d.excluded_reason);
    }
  }
  for (const PhaseSpec& p : plan.needs_labels) {
    std::cout << absl::StrFormat("  %s/%s waits for a worker with labels %s\n", p.run_id,
                                 p.phase_id, absl::StrJoin(p.labels, ","));
  }
  std::cout << ExpectedCurveText(plan.curve);
}

}  // namespace sluice

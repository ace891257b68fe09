#include "coordinator/policy/failure_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/fingerprint.h"
#include "re2/re2.h"

namespace sluice {

void FailurePolicy::Load(const std::vector<AttemptRecord>& history,
                         const std::map<std::string, int64_t>& unblocks,
                         const std::vector<bool>& transient) {
  by_fingerprint_.clear();
  by_run_.clear();
  phases_by_run_.clear();
  productive_families_.clear();
  unblocked_at_ = unblocks;
  for (size_t i = 0; i < history.size(); ++i) {
    // History does not say which failures were transient under the settings
    // of their day: today's settings decide (the caller's `transient`).
    const AttemptRecord& a = history[i];
    Observe(a.run_id, a.outcome, a.fingerprint, a.error_text, a.ended_at_ms,
            i < transient.size() && transient[i], a.phase_id);
  }
}

void FailurePolicy::Observe(const std::string& run_id, Outcome outcome,
                            const std::string& fingerprint, const std::string& error_text,
                            int64_t ended_at_ms, bool transient, const std::string& phase_id) {
  if (outcome == Outcome::kSucceeded) productive_families_.insert(family_rule_.Family(run_id));
  if (outcome != Outcome::kFailed || transient || fingerprint.empty()) return;
  if (auto it = unblocked_at_.find(fingerprint);
      it != unblocked_at_.end() && ended_at_ms <= it->second) {
    return;
  }
  FingerprintInfo& info = by_fingerprint_[fingerprint];
  if (info.fingerprint.empty()) {
    info.fingerprint = fingerprint;
    info.id = FingerprintId(fingerprint);
  }
  ++info.count;
  info.runs.insert(run_id);
  if (info.example_error.empty()) info.example_error = error_text;
  info.last_seen_ms = std::max(info.last_seen_ms, ended_at_ms);
  ++by_run_[run_id][fingerprint];
  PhaseHits& hits = phases_by_run_[run_id][fingerprint];
  if (phase_id.empty()) {
    ++hits.anonymous;
  } else {
    hits.phases.insert(phase_id);
  }
}

bool FailurePolicy::RunWide(const std::string& fingerprint) const {
  auto it = by_fingerprint_.find(fingerprint);
  if (it == by_fingerprint_.end()) return false;
  // family -> the phase ids it hit there. The same phase id failing alike in
  // runs of productive families (v1, v2 of one, or errors that normalise
  // alike in several) is still that phase's problem.
  std::map<std::string, std::set<std::string>> phases_by_family;
  int unproductive_runs = 0;
  for (const std::string& run : it->second.runs) {
    auto r = phases_by_run_.find(run);
    if (r == phases_by_run_.end()) continue;
    auto h = r->second.find(fingerprint);
    if (h == r->second.end()) continue;
    // Occurrences without a phase id are taken as distinct phases.
    if (h->second.anonymous > 0) return true;
    const std::string family = family_rule_.Family(run);
    // Runs failing alike at the same phase id where nothing ever succeeded
    // in their families: a common cause, not one phase's.
    if (!productive_families_.contains(family) && ++unproductive_runs >= 2) return true;
    std::set<std::string>& phases = phases_by_family[family];
    phases.insert(h->second.phases.begin(), h->second.phases.end());
    if (phases.size() >= 2) return true;
  }
  return false;
}

int64_t FailurePolicy::PhasesHit(const std::string& run_id, const std::string& fingerprint) const {
  auto run = phases_by_run_.find(run_id);
  if (run == phases_by_run_.end()) return 0;
  auto it = run->second.find(fingerprint);
  if (it == run->second.end()) return 0;
  return static_cast<int64_t>(it->second.phases.size()) + it->second.anonymous;
}

std::optional<std::string> FailurePolicy::BlockingFingerprint(const std::string& run_id,
                                                              int32_t max_repeats,
                                                              int64_t run_successes) const {
  if (max_repeats <= 0) return std::nullopt;
  auto run = by_run_.find(run_id);
  if (run == by_run_.end()) return std::nullopt;
  const FingerprintInfo* worst = nullptr;
  for (const auto& [fp, occurrences] : run->second) {
    auto it = by_fingerprint_.find(fp);
    if (it == by_fingerprint_.end() || !it->second.runs.contains(run_id)) continue;
    // Phase-specific: it never hit two phases of one run.
    if (!RunWide(fp)) continue;
    // A productive run: only a fingerprint that dominates it blocks it.
    if (run_successes > 0 && PhasesHit(run_id, fp) <= run_successes) continue;
    // A run whose family is productive: a failure that other runs share is
    // its cause only once it hit two of the run's own phases. One phase
    // failing alike may be that phase's own problem (its other phases were
    // never tried), and blocking the run would give them up untried.
    if (productive_families_.contains(family_rule_.Family(run_id)) && PhasesHit(run_id, fp) < 2) {
      continue;
    }
    if (it->second.count >= max_repeats && (worst == nullptr || it->second.count > worst->count)) {
      worst = &it->second;
    }
  }
  if (worst == nullptr) return std::nullopt;
  return worst->fingerprint;
}

RunFailures FailurePolicy::FailuresOf(const std::string& run_id) const {
  RunFailures out;
  auto run = by_run_.find(run_id);
  if (run == by_run_.end()) return out;
  int64_t top = 0;
  for (const auto& [fp, occurrences] : run->second) {
    out.count += occurrences;
    if (occurrences > top) {
      top = occurrences;
      out.top_fingerprint = fp;
    }
  }
  return out;
}

std::vector<FingerprintInfo> FailurePolicy::Fingerprints() const {
  std::vector<FingerprintInfo> out;
  for (const auto& [fp, info] : by_fingerprint_) {
    if (info.count > 0) out.push_back(info);
  }
  std::sort(out.begin(), out.end(), [](const FingerprintInfo& a, const FingerprintInfo& b) {
    return std::tie(b.count, a.fingerprint) < std::tie(a.count, b.fingerprint);
  });
  return out;
}

std::optional<std::string> FailurePolicy::Resolve(const std::string& key_or_id) const {
  if (by_fingerprint_.contains(key_or_id) || unblocked_at_.contains(key_or_id)) return key_or_id;
  for (const auto& [fp, info] : by_fingerprint_) {
    if (info.id == key_or_id) return fp;
  }
  return std::nullopt;
}

void FailurePolicy::Unblock(const std::string& fingerprint, int64_t at_ms) {
  unblocked_at_[fingerprint] = at_ms;
  auto it = by_fingerprint_.find(fingerprint);
  if (it == by_fingerprint_.end()) return;
  for (const std::string& run : it->second.runs) {
    auto r = by_run_.find(run);
    if (r != by_run_.end()) r->second.erase(fingerprint);
    auto h = phases_by_run_.find(run);
    if (h != phases_by_run_.end()) h->second.erase(fingerprint);
  }
  by_fingerprint_.erase(it);
}

absl::StatusOr<TransientMatcher> TransientMatcher::Compile(
    const std::vector<std::string>& patterns) {
  TransientMatcher m;
  RE2::Options options;
  options.set_case_sensitive(false);
  options.set_log_errors(false);
  for (const std::string& p : patterns) {
    auto re = std::make_shared<const re2::RE2>(p, options);
    if (!re->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--retry-on ", p, ": not a valid RE2 pattern: ", re->error()));
    }
    m.patterns_.push_back(std::move(re));
  }
  return m;
}

const std::vector<std::string>& DefaultTransientPatterns() {
  static const auto* const kPatterns = new std::vector<std::string>{
      R"(connection\s*(reset|refused|aborted))",
      R"(\bE(CONNRESET|CONNREFUSED|CONNABORTED|TIMEDOUT|PIPE)\b)",
      R"((read|connect|connection)\s*time-?out)",
      R"(timed\s*out)",
      R"(\b(429|5\d\d)\b[^\n]{0,4}(too many requests|server error|internal server error|)"
      R"(bad gateway|service unavailable|gateway time-?out))",
      R"(\b(http|status|status code|response code)[ :=/]*(429|5\d\d)\b)",
      R"(bad gateway|service unavailable|gateway time-?out|too many requests)",
      R"(temporarily unavailable)",
      R"(rate[ _-]?limit)",
      R"(broken pipe)",
      R"(name or service not known|temporary failure in name resolution)",
      R"(could not resolve host|nodename nor servname|no address associated with hostname)",
  };
  return *kPatterns;
}

absl::StatusOr<TransientMatcher> TransientMatcher::ForSettings(
    const std::vector<std::string>& retry_on) {
  // The built-in set compiles once per process; copies share it.
  static const auto* const kDefaults =
      new TransientMatcher(Compile(DefaultTransientPatterns()).value());
  std::vector<std::string> own;
  bool defaults = true;
  for (const std::string& p : retry_on) {
    if (p == kNoDefaultTransient) {
      defaults = false;
    } else {
      own.push_back(p);
    }
  }
  TransientMatcher m;
  if (!own.empty()) {
    auto compiled = Compile(own);
    if (!compiled.ok()) return compiled.status();
    m = *std::move(compiled);
  }
  if (defaults) {
    m.patterns_.insert(m.patterns_.end(), kDefaults->patterns_.begin(), kDefaults->patterns_.end());
  }
  return m;
}

bool TransientMatcher::Matches(const std::string& fingerprint,
                               const std::string& error_text) const {
  for (const auto& re : patterns_) {
    if (RE2::PartialMatch(fingerprint, *re) || RE2::PartialMatch(error_text, *re)) return true;
  }
  return false;
}

}  // namespace sluice

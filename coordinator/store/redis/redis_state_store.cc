#include "coordinator/store/redis/redis_state_store.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/last_error.h"
#include "common/status_macros.h"
#include "coordinator/store/redis/redis_lua_scripts.h"
#include "coordinator/store/report_limits.h"
#include "coordinator/store/store_codec.h"

namespace sluice {
namespace {

constexpr int kSchemaVersion = 1;

// The store's scripts (scripts/*.lua; the fencing and the key layout are in
// prelude.lua and fence_prelude.lua). Index into kScripts.
enum Script : size_t {
  kImport,
  kListRunStats,
  kCountPhases,
  kLease,
  kRenew,
  kReport,
  kExpire,
  kListLeases,
  kUpsertWorker,
  kListWorkers,
  kCreateSession,
  kEndSession,
  kLatestSession,
  kPutPolicy,
  kGetRunStats,
  kListPendingLabelled,
  kInitCounters,
  kListPhaseAttempts,
  kRemoveWorker,
  kScriptCount,
};

struct ScriptDef {
  ScriptAccess access;
  bool fenced;  // takes the leader epoch as ARGV[2] (fence_prelude.lua)
  const char* body;
};

constexpr ScriptAccess kW = ScriptAccess::kWrite;
constexpr ScriptAccess kR = ScriptAccess::kRead;
// One per line, in the order of the Script enum above.
// clang-format off
constexpr ScriptDef kScripts[kScriptCount] = {
    {kW, true, redis_lua::kImportLua},
    {kR, false, redis_lua::kListRunStatsLua},
    {kR, false, redis_lua::kCountPhasesLua},
    {kW, true, redis_lua::kLeaseLua},
    {kW, true, redis_lua::kRenewLua},
    {kW, true, redis_lua::kReportLua},
    {kW, true, redis_lua::kExpireLua},
    {kR, false, redis_lua::kListLeasesLua},
    {kW, true, redis_lua::kUpsertWorkerLua},
    {kR, false, redis_lua::kListWorkersLua},
    {kW, true, redis_lua::kCreateSessionLua},
    {kW, true, redis_lua::kEndSessionLua},
    {kR, false, redis_lua::kLatestSessionLua},
    {kW, true, redis_lua::kPutPolicyLua},
    {kR, false, redis_lua::kGetRunStatsLua},
    {kR, false, redis_lua::kListPendingLabelledLua},
    {kW, false, redis_lua::kInitCountersLua},
    {kR, false, redis_lua::kListPhaseAttemptsLua},
    {kW, true, redis_lua::kRemoveWorkerLua},
};
// clang-format on

std::vector<std::string> ScriptSources() {
  std::vector<std::string> out;
  for (const ScriptDef& def : kScripts) {
    out.push_back(ComposeRedisScript(def.access, def.fenced, def.body));
  }
  return out;
}

// Field lists mirrored from prelude.lua (HMGET order).
constexpr int kLeaseFieldCount = 10;
constexpr std::array<std::string_view, 20> kAttemptFields = {
    "lease_id",    "run_id",      "phase_id",    "attempt",          "epoch",
    "worker_id",   "session_id",  "outcome",     "exit_code",        "signal",
    "duration_ms", "error_text",  "fingerprint", "telemetry_events", "telemetry_by_type",
    "stdout_tail", "stderr_tail", "started_at",  "ended_at",         "telemetry_unknown"};
constexpr size_t kAttemptFieldCount = kAttemptFields.size();
constexpr int kWorkerFieldCount = 6;
const std::vector<std::string> kPhaseFields = {
    "run_id",           "phase_id",  "phase_index", "priority", "last_error",       "labels",
    "metadata",         "state",     "attempts",    "requeues", "current_lease_id", "final_outcome",
    "telemetry_events", "updated_at"};
const std::vector<std::string> kSessionFields = {"session_id", "settings", "state",
                                                 "started_at", "ended_at", "end_reason"};

// --- Rank members of the per-run pending sets ------------------------------
// All members score 0, so Redis orders them bytewise: 16 hex digits of the
// negated priority, 16 of the phase index, then the phase id. That is exactly
// SQLite's ORDER BY priority DESC, phase_index, phase_id (BINARY collation)
// over the whole int64 range, which a double score could not be.

uint64_t Biased(int64_t v) { return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63); }

std::string Hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf, 16);
}

std::string RankMember(const PhaseSpec& spec) {
  return absl::StrCat(Hex16(~Biased(spec.priority)), Hex16(Biased(spec.phase_index)),
                      spec.phase_id);
}

int64_t PriorityOfRank(const std::string& member) {
  if (member.size() < 16) return 0;
  uint64_t u = 0;
  for (size_t i = 0; i < 16; ++i) {
    const char c = member[i];
    const uint64_t digit =
        c >= 'a' ? static_cast<uint64_t>(c - 'a' + 10) : static_cast<uint64_t>(c - '0');
    u = (u << 4) | digit;
  }
  return static_cast<int64_t>(~u ^ (uint64_t{1} << 63));
}

// --- Encodings shared with the SQLite store ---------------------------------

std::string PhaseKeyName(const std::string& prefix, const std::string& run_id,
                         const std::string& phase_id) {
  // The run id's length makes the key unambiguous: ids may contain ':'.
  return absl::StrCat(prefix, "phase:", run_id.size(), ":", run_id, ":", phase_id);
}

// A window on a reply's elements, for the shared decoders (store_codec.h):
// column i is elements[at + i].
class RedisRow {
 public:
  RedisRow(const std::vector<RedisReply>& elements, size_t at) : e_(elements), at_(at) {}
  std::string Text(int i) const { return e_[at_ + static_cast<size_t>(i)].Text(); }
  int64_t Int(int i) const { return e_[at_ + static_cast<size_t>(i)].Int(); }
  int32_t Int32(int i) const { return e_[at_ + static_cast<size_t>(i)].Int32(); }

 private:
  const std::vector<RedisReply>& e_;
  const size_t at_;
};

// The same over a reply read in place (RedisConnection::VisitPipelined).
class RedisViewRow {
 public:
  explicit RedisViewRow(RedisReplyView row) : row_(row) {}
  std::string Text(int i) const { return row_[static_cast<size_t>(i)].Text(); }
  int64_t Int(int i) const { return row_[static_cast<size_t>(i)].Int(); }
  int32_t Int32(int i) const { return row_[static_cast<size_t>(i)].Int32(); }

 private:
  const RedisReplyView row_;
};

// One run's statistics as list_run_stats.lua answers them (and
// append_run_stats in prelude.lua): the run id, the 10 RUN_FIELDS, the best
// pending rank member; elements[at..at + kRunStatsWidth).
constexpr size_t kRunStatsWidth = 12;
RunStats DecodeRunStatsRow(const std::vector<RedisReply>& elements, size_t at) {
  RunStats s = DecodeRunStats(RedisRow(elements, at));
  s.best_pending_priority = PriorityOfRank(elements[at + kRunStatsWidth - 1].Text());
  return s;
}

// The four ARGV a script's apply_transition (prelude.lua) reads: the phase
// field the outcome spends, '1' when the phase succeeded, the value of that
// field at which it fails for good, and the final outcome.
void AppendTransition(const PhaseTransition& t, std::vector<std::string>& args) {
  args.emplace_back(CounterField(t.counter));
  args.emplace_back(t.succeeds ? "1" : "0");
  args.push_back(std::to_string(t.fail_at));
  args.emplace_back(OutcomeName(t.final_outcome));
}

}  // namespace

RedisStateStore::RedisStateStore(const RedisOptions& options)
    : conn_(options, ScriptSources()),
      prefix_(conn_.prefix()),
      latest_session_(options.session_cache_max_age) {}

RedisStateStore::~RedisStateStore() = default;

absl::StatusOr<std::unique_ptr<RedisStateStore>> RedisStateStore::Open(
    const RedisOptions& options) {
  SLUICE_RETURN_IF_ERROR(ValidateRedisOptions(options));
  std::unique_ptr<RedisStateStore> store(new RedisStateStore(options));
  const std::string meta = absl::StrCat(store->prefix_, "meta");
  SLUICE_RETURN_IF_ERROR(
      store->conn_.Command({"HSETNX", meta, "schema_version", std::to_string(kSchemaVersion)})
          .status());
  SLUICE_ASSIGN_OR_RETURN(RedisReply version,
                          store->conn_.Command({"HGET", meta, "schema_version"}));
  if (version.Int() != kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("redis namespace ", options.key_namespace,
                                                      " holds schema version ", version.Text(),
                                                      ", this build knows ", kSchemaVersion));
  }
  // Created with the namespace, or on the first open of one from before
  // cluster ids: HSETNX is one atomic write, and an existing id is kept.
  SLUICE_RETURN_IF_ERROR(
      store->conn_.Command({"HSETNX", meta, "cluster_id", NewClusterId()}).status());
  SLUICE_ASSIGN_OR_RETURN(RedisReply cluster_id,
                          store->conn_.Command({"HGET", meta, "cluster_id"}));
  store->cluster_id_ = cluster_id.Text();
  // The phase counters and the labelled set, for a namespace older than them.
  SLUICE_RETURN_IF_ERROR(store->Run(kInitCounters, {}).status());
  return store;
}

void RedisStateStore::SetFencingEpoch(int64_t epoch) {
  if (fencing_epoch_.exchange(epoch) != epoch) latest_session_.Drop();
}

absl::StatusOr<RedisReply> RedisStateStore::Run(size_t script, std::vector<std::string> args) {
  return Run(script, std::move(args), conn_.options().command_timeout);
}

absl::StatusOr<RedisReply> RedisStateStore::Run(size_t script, std::vector<std::string> args,
                                                absl::Duration timeout) {
  return conn_.RunScript(script, FencedArgs(script, std::move(args)), timeout);
}

std::vector<std::string> RedisStateStore::FencedArgs(size_t script,
                                                     std::vector<std::string> args) const {
  if (kScripts[script].fenced) {
    // ARGV[2]: the caller's leader epoch, '' when unfenced (fence_prelude.lua).
    const int64_t fence = fencing_epoch_.load();
    args.insert(args.begin(), fence == kUnfenced ? std::string() : std::to_string(fence));
  }
  return args;
}

namespace {

void AppendBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void AppendMsgpackString(std::string* out, std::string_view s) {
  if (s.size() < 32) {
    out->push_back(static_cast<char>(0xa0 | s.size()));
  } else if (s.size() <= 0xff) {
    out->push_back(static_cast<char>(0xd9));
    AppendBigEndian(out, s.size(), 1);
  } else if (s.size() <= 0xffff) {
    out->push_back(static_cast<char>(0xda));
    AppendBigEndian(out, s.size(), 2);
  } else {
    out->push_back(static_cast<char>(0xdb));
    AppendBigEndian(out, s.size(), 4);
  }
  out->append(s);
}

}  // namespace

std::string RedisStateStore::EncodeImportChunk(const std::vector<PhaseSpec>& phases) {
  std::string out;
  out.push_back(static_cast<char>(0xdd));  // array 32
  AppendBigEndian(&out, phases.size() * 9, 4);
  for (const PhaseSpec& p : phases) {
    AppendMsgpackString(&out, p.run_id);
    AppendMsgpackString(&out, p.phase_id);
    AppendMsgpackString(&out, std::to_string(p.phase_index));
    AppendMsgpackString(&out, std::to_string(p.priority));
    AppendMsgpackString(&out, p.last_error);
    AppendMsgpackString(&out, JoinLabels(p.labels));
    AppendMsgpackString(&out, p.metadata_json);
    AppendMsgpackString(&out, RankMember(p));
    // Derived from last_error here, once, so lease.lua only reads a flag.
    AppendMsgpackString(&out, LastErrorIsPhaseTimeout(p.last_error) ? "1" : "0");
  }
  return out;
}

absl::StatusOr<RedisStateStore::ImportSlice> RedisStateStore::ApplyImportSlice(
    const std::string& id, int64_t chunks, int64_t ttl_seconds) {
  const RedisOptions& o = conn_.options();
  absl::StatusOr<RedisReply> r =
      Run(kImport,
          {id, std::to_string(chunks), std::to_string(o.import_slice_phases),
           std::to_string(ttl_seconds)},
          std::max(o.import_timeout, o.command_timeout));
  absl::Status s = r.status();
  if (s.ok()) s = ExpectRedisArray(*r, 4, "import");
  if (s.ok() && r->elements.size() != 4)
    s = absl::InternalError("redis: unexpected reply to import");
  if (s.ok() && import_slice_hook_) s = import_slice_hook_(r->elements[0].Int());
  SLUICE_RETURN_IF_ERROR(s);
  const std::vector<RedisReply>& e = r->elements;
  return ImportSlice{e[0].Int(), ImportResult{e[1].Int(), e[2].Int(), e[3].Int()}};
}

absl::StatusOr<std::optional<PhaseRecord>> RedisStateStore::GetPhase(const PhaseKey& key) {
  std::vector<std::string> argv = {"HMGET", PhaseKeyName(prefix_, key.run_id, key.phase_id)};
  argv.insert(argv.end(), kPhaseFields.begin(), kPhaseFields.end());
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, conn_.Command(argv));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, kPhaseFields.size(), "HMGET phase"));
  const std::vector<RedisReply>& e = r.elements;
  if (e[0].nil()) return std::optional<PhaseRecord>();
  return std::optional<PhaseRecord>(DecodePhase(RedisRow(e, 0)));
}

absl::StatusOr<std::vector<RunStats>> RedisStateStore::ListRunStats() {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kListRunStats, {}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, kRunStatsWidth, "run stats"));
  std::vector<RunStats> out;
  for (size_t i = 0; i < r.elements.size(); i += kRunStatsWidth) {
    out.push_back(DecodeRunStatsRow(r.elements, i));
  }
  return out;
}

absl::StatusOr<std::optional<RunStats>> RedisStateStore::GetRunStats(const std::string& run_id) {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kGetRunStats, {run_id}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, 0, "run stats"));
  if (r.elements.empty()) return std::optional<RunStats>();
  if (r.elements.size() != kRunStatsWidth) {
    return absl::InternalError("redis: unexpected reply to run stats");
  }
  return std::optional<RunStats>(DecodeRunStatsRow(r.elements, 0));
}

absl::StatusOr<std::vector<PhaseRecord>> RedisStateStore::ListPendingLabelledPhases(int64_t limit) {
  std::vector<PhaseRecord> out;
  if (limit <= 0) return out;
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kListPendingLabelled, {std::to_string(limit)}));
  const size_t stride = kPhaseFields.size();
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, stride, "pending labelled"));
  for (size_t i = 0; i + stride <= r.elements.size(); i += stride) {
    out.push_back(DecodePhase(RedisRow(r.elements, i)));
  }
  return out;
}

absl::StatusOr<PhaseCounts> RedisStateStore::CountPhases() {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kCountPhases, {}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, 4, "count phases"));
  if (r.elements.size() != 4) return absl::InternalError("redis: unexpected reply to count");
  return PhaseCounts{r.elements[0].Int(), r.elements[1].Int(), r.elements[2].Int(),
                     r.elements[3].Int()};
}

absl::StatusOr<std::optional<LeaseGrant>> RedisStateStore::LeaseNextInRun(
    const LeaseParams& params) {
  std::vector<std::string> args = {params.run_id,
                                   params.worker_id,
                                   params.session_id,
                                   params.lease_id,
                                   std::to_string(params.timeout_seconds),
                                   std::to_string(params.now_ms),
                                   std::to_string(params.now_ms + params.ttl_ms),
                                   params.retries_last ? (params.untried_only ? "2" : "1") : "0",
                                   std::to_string(params.worker_labels.size())};
  args.insert(args.end(), params.worker_labels.begin(), params.worker_labels.end());
  const absl::Time sent = absl::Now();
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kLease, args));
  if (r.type != RedisReply::Type::kArray ||
      (r.elements.size() != 1 && r.elements.size() != 5 + kRunStatsWidth)) {
    return absl::InternalError("redis: unexpected reply to lease");
  }
  latest_session_.Observe(r.elements[0].Text(), sent);
  if (r.elements.size() == 1) return std::optional<LeaseGrant>();
  LeaseGrant g;
  g.lease_id = params.lease_id;
  g.run_id = params.run_id;
  g.phase_id = r.elements[1].Text();
  g.attempt = r.elements[2].Int32();
  g.epoch = r.elements[3].Int();
  g.worker_id = params.worker_id;
  g.session_id = params.session_id;
  g.timeout_seconds = params.timeout_seconds;
  g.leased_at_ms = params.now_ms;
  g.expires_at_ms = params.now_ms + params.ttl_ms;
  g.retry_tier = r.elements[4].Int() == 1;
  g.run_stats = DecodeRunStatsRow(r.elements, 5);
  return std::optional<LeaseGrant>(std::move(g));
}

absl::StatusOr<std::vector<std::string>> RedisStateStore::RenewLeases(
    const std::string& worker_id, const std::vector<std::string>& lease_ids, int64_t now_ms,
    int64_t ttl_ms) {
  std::vector<std::string> args = {worker_id, std::to_string(now_ms),
                                   std::to_string(now_ms + ttl_ms)};
  args.insert(args.end(), lease_ids.begin(), lease_ids.end());
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kRenew, args));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, 0, "renew"));
  std::vector<std::string> gone;
  for (const RedisReply& e : r.elements) gone.push_back(e.Text());
  return gone;
}

namespace {

// report.lua's ARGV after the fence: the report, its fingerprint, the time
// and the transition.
std::vector<std::string> ReportArgs(const ReportParams& params) {
  const AttemptReport& rep = params.report;
  std::vector<std::string> args = {rep.lease_id,
                                   std::to_string(rep.epoch),
                                   rep.worker_id,
                                   std::string(OutcomeName(rep.outcome)),
                                   std::to_string(rep.exit_code),
                                   std::to_string(rep.signal),
                                   std::to_string(rep.duration_ms),
                                   rep.error_text,
                                   params.fingerprint,
                                   std::to_string(rep.telemetry_events),
                                   TypesToJson(rep.telemetry_by_type),
                                   rep.stdout_tail,
                                   rep.stderr_tail,
                                   std::to_string(params.now_ms)};
  AppendTransition(params.transition, args);
  args.push_back(rep.telemetry_unknown ? "1" : "0");
  return args;
}

// The reply after its first element, the session generation (read by the
// caller).
absl::StatusOr<ReportResult> DecodeReportReply(const RedisReply& r) {
  ReportResult result;
  if (r.elements.size() == 5 + kRunStatsWidth) {
    result.run_id = r.elements[3].Text();
    result.phase_id = r.elements[4].Text();
    result.run_stats = DecodeRunStatsRow(r.elements, 5);
  }
  const std::string disposition = r.elements[1].Text();
  if (disposition == "accepted") {
    result.disposition = ReportDisposition::kAccepted;
  } else if (disposition == "duplicate") {
    result.disposition = ReportDisposition::kDuplicate;
  } else if (disposition == "late") {
    result.disposition = ReportDisposition::kLate;
  } else {
    result.disposition = ReportDisposition::kUnknownLease;
  }
  result.phase_state = ParsePhaseState(r.elements[2].Text()).value_or(PhaseState::kPending);
  return result;
}

bool IsReportReply(const RedisReply& r) {
  return r.type == RedisReply::Type::kArray &&
         (r.elements.size() == 3 || r.elements.size() == 5 + kRunStatsWidth);
}

}  // namespace

absl::StatusOr<ReportResult> RedisStateStore::RecordReport(const ReportParams& params) {
  // The same bounds as the SQLite store, checked the same way before anything
  // is sent; report.lua re-checks the counters it adds before its first write.
  SLUICE_RETURN_IF_ERROR(CheckReportSums(params.report));
  const absl::Time sent = absl::Now();
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kReport, ReportArgs(params)));
  if (!IsReportReply(r)) return absl::InternalError("redis: unexpected reply to report");
  latest_session_.Observe(r.elements[0].Text(), sent);
  return DecodeReportReply(r);
}

std::vector<absl::StatusOr<ReportResult>> RedisStateStore::RecordReports(
    const std::vector<ReportParams>& batch) {
  std::vector<absl::StatusOr<ReportResult>> answers(batch.size(),
                                                    absl::InternalError("not recorded"));
  std::vector<std::vector<std::string>> calls;
  std::vector<size_t> index_of;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (absl::Status sums = CheckReportSums(batch[i].report); !sums.ok()) {
      answers[i] = sums;
      continue;
    }
    calls.push_back(FencedArgs(kReport, ReportArgs(batch[i])));
    index_of.push_back(i);
  }
  if (calls.empty()) return answers;
  const absl::Time sent = absl::Now();
  std::vector<absl::StatusOr<RedisReply>> replies = conn_.RunScriptPipelined(kReport, calls);
  for (size_t k = 0; k < replies.size(); ++k) {
    if (!replies[k].ok()) {
      answers[index_of[k]] = replies[k].status();
    } else if (!IsReportReply(*replies[k])) {
      answers[index_of[k]] = absl::InternalError("redis: unexpected reply to report");
    } else {
      latest_session_.Observe(replies[k]->elements[0].Text(), sent);
      answers[index_of[k]] = DecodeReportReply(*replies[k]);
    }
  }
  return answers;
}

absl::StatusOr<std::vector<ExpiredLease>> RedisStateStore::ExpireLeases(
    int64_t now_ms, const PhaseTransition& lost) {
  std::vector<std::string> args = {std::to_string(now_ms), kLostAttemptErrorText,
                                   kLostAttemptFingerprint};
  AppendTransition(lost, args);
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kExpire, args));
  constexpr size_t kStride = kLeaseFieldCount + 1;
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, kStride, "expire"));
  std::vector<ExpiredLease> out;
  for (size_t i = 0; i < r.elements.size(); i += kStride) {
    out.push_back(ExpiredLease{
        DecodeLease(RedisRow(r.elements, i)),
        ParsePhaseState(r.elements[i + kLeaseFieldCount].Text()).value_or(PhaseState::kPending)});
  }
  return out;
}

absl::StatusOr<std::vector<LeaseGrant>> RedisStateStore::ListActiveLeases() {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kListLeases, {}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, kLeaseFieldCount, "list leases"));
  std::vector<LeaseGrant> out;
  for (size_t i = 0; i < r.elements.size(); i += kLeaseFieldCount) {
    out.push_back(DecodeLease(RedisRow(r.elements, i)));
  }
  // Grant order (the SQLite store lists by leased_at, then insertion).
  std::stable_sort(out.begin(), out.end(), [](const LeaseGrant& a, const LeaseGrant& b) {
    return std::tie(a.leased_at_ms, a.epoch) < std::tie(b.leased_at_ms, b.epoch);
  });
  return out;
}

absl::StatusOr<bool> RedisStateStore::IsLeaseActive(const std::string& lease_id) {
  // A lease is active while it is in the leases index (report.lua and
  // expire.lua take it out).
  SLUICE_ASSIGN_OR_RETURN(RedisReply r,
                          conn_.Command({"ZSCORE", absl::StrCat(prefix_, "leases"), lease_id}));
  return !r.nil();
}

absl::Status RedisStateStore::UpsertWorker(const WorkerInfo& w) {
  return Run(kUpsertWorker, {w.worker_id, w.host, std::to_string(w.slots), JoinLabels(w.labels),
                             w.version, std::to_string(w.last_seen_ms)})
      .status();
}

absl::Status RedisStateStore::RemoveWorker(const std::string& worker_id) {
  return Run(kRemoveWorker, {worker_id}).status();
}

absl::StatusOr<AttemptPage> RedisStateStore::ListPhaseAttempts(const PhaseKey& key, int64_t offset,
                                                               int64_t limit) {
  if (offset < 0 || limit < 0) return absl::InvalidArgumentError("offset and limit >= 0");
  SLUICE_ASSIGN_OR_RETURN(
      RedisReply r, Run(kListPhaseAttempts,
                        {key.run_id, key.phase_id, std::to_string(offset), std::to_string(limit)}));
  if (r.type != RedisReply::Type::kArray || r.elements.empty() ||
      (r.elements.size() - 1) % kAttemptFieldCount != 0) {
    return absl::InternalError("redis: unexpected reply to phase attempts");
  }
  AttemptPage page;
  page.total = r.elements[0].Int();
  for (size_t i = 1; i < r.elements.size(); i += kAttemptFieldCount) {
    page.rows.push_back(DecodeAttempt(RedisRow(r.elements, i)));
  }
  return page;
}

absl::StatusOr<std::vector<WorkerInfo>> RedisStateStore::ListWorkers() {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kListWorkers, {}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, kWorkerFieldCount, "list workers"));
  std::vector<WorkerInfo> out;
  for (size_t i = 0; i < r.elements.size(); i += kWorkerFieldCount) {
    out.push_back(DecodeWorker(RedisRow(r.elements, i)));
  }
  return out;
}

absl::Status RedisStateStore::CreateSession(const SessionRecord& session) {
  absl::Status written =
      Run(kCreateSession,
          {session.session_id, SettingsToJson(session.settings),
           std::string(SessionStateName(session.state)), std::to_string(session.started_at_ms),
           std::to_string(session.ended_at_ms), session.end_reason})
          .status();
  // Also on an error: the write may have applied with only its reply lost.
  latest_session_.Drop();
  return written;
}

absl::Status RedisStateStore::EndSession(const std::string& session_id, SessionState state,
                                         int64_t ended_at_ms, const std::string& reason) {
  absl::Status written = Run(kEndSession, {session_id, std::string(SessionStateName(state)),
                                           std::to_string(ended_at_ms), reason})
                             .status();
  latest_session_.Drop();  // also on an error, as in CreateSession
  return written;
}

absl::StatusOr<std::optional<SessionRecord>> RedisStateStore::GetSession(
    const std::string& session_id) {
  std::vector<std::string> argv = {"HMGET", absl::StrCat(prefix_, "session:", session_id)};
  argv.insert(argv.end(), kSessionFields.begin(), kSessionFields.end());
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, conn_.Command(argv));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, kSessionFields.size(), "HMGET session"));
  if (r.elements[0].nil()) return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(DecodeSession(RedisRow(r.elements, 0)));
}

absl::StatusOr<std::optional<SessionRecord>> RedisStateStore::LatestSession() {
  const absl::Time now = absl::Now();
  if (std::optional<std::optional<SessionRecord>> cached = latest_session_.Get(now)) {
    return *std::move(cached);
  }
  const uint64_t ticket = latest_session_.BeginRead();
  SLUICE_ASSIGN_OR_RETURN(RedisReply r, Run(kLatestSession, {}));
  if (r.type != RedisReply::Type::kArray ||
      (r.elements.size() != 1 && r.elements.size() != 1 + kSessionFields.size())) {
    return absl::InternalError("redis: unexpected reply to latest session");
  }
  std::optional<SessionRecord> latest;
  if (r.elements.size() > 1 && !r.elements[1].nil()) {
    latest = DecodeSession(RedisRow(r.elements, 1));
  }
  latest_session_.Store(ticket, r.elements[0].Text(), latest, now);
  return latest;
}

absl::StatusOr<std::vector<AttemptRecord>> RedisStateStore::ListAttempts(
    const std::string& session_id) {
  return ListAttemptRows(session_id, /*with_output=*/true);
}

absl::StatusOr<std::vector<AttemptRecord>> RedisStateStore::ListAttemptsWithoutOutput(
    const std::string& session_id) {
  return ListAttemptRows(session_id, /*with_output=*/false);
}

absl::StatusOr<int64_t> RedisStateStore::AppendAttemptRange(const std::string& session_id,
                                                            bool with_output, int64_t first,
                                                            int64_t count,
                                                            std::vector<AttemptRecord>* out) {
  // The ids, then each attempt's hash, pipelined: not one script. An attempt
  // is written whole in the script that lists it and never changes, so the
  // two reads need not be atomic; and Redis answers plain HMGETs ~3x cheaper
  // than the same HMGETs inside a script (1M attempts: 3.5 s of its CPU,
  // not 11.8 s).
  const std::string list = session_id.empty()
                               ? absl::StrCat(prefix_, "attempts")
                               : absl::StrCat(prefix_, "session_attempts:", session_id);
  SLUICE_ASSIGN_OR_RETURN(RedisReply ids, conn_.Command({"LRANGE", list, std::to_string(first),
                                                         std::to_string(first + count - 1)}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(ids, 0, "LRANGE attempts"));
  // Pipelines of a few hundred: hiredis moves the unsent rest of its output
  // buffer after every write, so a pipeline of thousands of commands costs
  // the client more than the extra round trips do. Each reply is decoded in
  // place: at 1M attempts, copying 20 strings of each first was a third of
  // the client's time.
  constexpr size_t kPipeline = 500;
  std::vector<std::string> keys;
  for (size_t at = 0; at < ids.elements.size(); at += kPipeline) {
    const size_t n = std::min(kPipeline, ids.elements.size() - at);
    keys.clear();
    for (size_t i = at; i < at + n; ++i) {
      keys.push_back(absl::StrCat(prefix_, "attempt:", ids.elements[i].Text()));
    }
    SLUICE_RETURN_IF_ERROR(conn_.VisitPipelined(
        n,
        [&](size_t i, std::vector<const char*>& argv, std::vector<size_t>& lens) {
          argv.push_back("HMGET");
          lens.push_back(5);
          argv.push_back(keys[i].data());
          lens.push_back(keys[i].size());
          for (std::string_view f : kAttemptFields) {
            // A name no hash has reads nil (""): start-up reads no output tails.
            if (!with_output && (f == "stdout_tail" || f == "stderr_tail")) f = "-";
            argv.push_back(f.data());
            lens.push_back(f.size());
          }
        },
        [&](size_t i, RedisReplyView row) -> absl::Status {
          if (!row.array() || row.size() != kAttemptFieldCount) {
            return absl::InternalError("redis: unexpected reply to HMGET attempt");
          }
          if (row[0].nil()) {
            // Listed but gone: the server lost data (a restart without
            // persistence, a failover) between the two reads.
            return absl::UnavailableError(absl::StrCat("redis ", conn_.Where(), ": attempt ",
                                                       ids.elements[at + i].Text(),
                                                       " is listed but has no record"));
          }
          out->push_back(DecodeAttempt(RedisViewRow(row)));
          return absl::OkStatus();
        }));
  }
  return static_cast<int64_t>(ids.elements.size());
}

absl::StatusOr<std::vector<AttemptRecord>> RedisStateStore::ListAttemptRows(
    const std::string& session_id, bool with_output) {
  // The lists only grow at their end, so consecutive ranges read every
  // attempt once, and those recorded meanwhile too.
  std::vector<AttemptRecord> out;
  for (int64_t first = 0;; first += kAttemptRangeMax) {
    SLUICE_ASSIGN_OR_RETURN(
        int64_t n, AppendAttemptRange(session_id, with_output, first, kAttemptRangeMax, &out));
    if (n < kAttemptRangeMax) break;
  }
  return out;
}

absl::StatusOr<AttemptBatch> RedisStateStore::ListAttemptsFrom(const std::string& session_id,
                                                               int64_t cursor, int64_t limit) {
  SLUICE_RETURN_IF_ERROR(CheckAttemptsFromQuery(cursor, limit));
  // The cursor is an index into the session's end-order list, which only
  // grows at its end.
  AttemptBatch batch;
  batch.next_cursor = cursor;
  while (static_cast<int64_t>(batch.rows.size()) < limit) {
    const int64_t want =
        std::min(kAttemptRangeMax, limit - static_cast<int64_t>(batch.rows.size()));
    SLUICE_ASSIGN_OR_RETURN(int64_t n, AppendAttemptRange(session_id, /*with_output=*/false,
                                                          batch.next_cursor, want, &batch.rows));
    batch.next_cursor += n;
    if (n < want) break;
  }
  return batch;
}

absl::StatusOr<int64_t> RedisStateStore::CountSessionAttempts(const std::string& session_id) {
  SLUICE_ASSIGN_OR_RETURN(
      RedisReply r, conn_.Command({"GET", absl::StrCat(prefix_, "session_count:", session_id)}));
  return r.Int();
}

absl::StatusOr<std::vector<LateReportRecord>> RedisStateStore::ListLateReports() {
  // The index orders by received_at, then by lease id (ZRANGE on equal scores).
  SLUICE_ASSIGN_OR_RETURN(
      RedisReply ids, conn_.Command({"ZRANGE", absl::StrCat(prefix_, "late_reports"), "0", "-1"}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(ids, 0, "ZRANGE late_reports"));
  std::vector<LateReportRecord> out;
  for (const RedisReply& id : ids.elements) {
    SLUICE_ASSIGN_OR_RETURN(
        RedisReply h,
        conn_.Command({"HMGET", absl::StrCat(prefix_, "late:", id.Text()), "worker_id", "outcome",
                       "telemetry_events", "error_text", "received_at"}));
    SLUICE_RETURN_IF_ERROR(ExpectRedisArray(h, 5, "HMGET late"));
    LateReportRecord r;
    r.lease_id = id.Text();
    r.worker_id = h.elements[0].Text();
    const std::optional<Outcome> outcome = ParseOutcome(h.elements[1].Text());
    if (!outcome) {
      return absl::InternalError(absl::StrCat("redis: late report ", r.lease_id, " has outcome '",
                                              h.elements[1].Text(), "'"));
    }
    r.outcome = *outcome;
    r.telemetry_events = h.elements[2].Int();
    r.error_text = h.elements[3].Text();
    r.received_at_ms = h.elements[4].Int();
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<int64_t> RedisStateStore::CountLateReports() {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r,
                          conn_.Command({"ZCARD", absl::StrCat(prefix_, "late_reports")}));
  return r.Int();
}

absl::StatusOr<std::vector<PhaseRecord>> RedisStateStore::ListPendingPhases(
    const std::string& run_id, int64_t limit) {
  std::vector<PhaseRecord> out;
  if (limit <= 0) return out;
  // Members are 32 hex digits of rank followed by the phase id (see docs/redis.md).
  SLUICE_ASSIGN_OR_RETURN(RedisReply r,
                          conn_.Command({"ZRANGE", absl::StrCat(prefix_, "pending:", run_id), "0",
                                         std::to_string(limit - 1)}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, 0, "ZRANGE pending"));
  for (const RedisReply& member : r.elements) {
    const std::string m = member.Text();
    if (m.size() <= 32) return absl::InternalError("redis: malformed pending member " + m);
    SLUICE_ASSIGN_OR_RETURN(std::optional<PhaseRecord> phase,
                            GetPhase(PhaseKey{run_id, m.substr(32)}));
    if (phase) out.push_back(std::move(*phase));
  }
  return out;
}

absl::Status RedisStateStore::PutPolicyRecord(const std::string& kind, const std::string& key,
                                              const std::string& value) {
  return Run(kPutPolicy, {kind, key, value}).status();
}

absl::StatusOr<std::map<std::string, std::string>> RedisStateStore::ListPolicyRecords(
    const std::string& kind) {
  SLUICE_ASSIGN_OR_RETURN(RedisReply r,
                          conn_.Command({"HGETALL", absl::StrCat(prefix_, "policy:", kind)}));
  SLUICE_RETURN_IF_ERROR(ExpectRedisArray(r, 2, "HGETALL policy"));
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    out[r.elements[i].Text()] = r.elements[i + 1].Text();
  }
  return out;
}

}  // namespace sluice

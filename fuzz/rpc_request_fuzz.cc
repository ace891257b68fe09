// libFuzzer target: every gRPC request message of sluice.v1 (WorkerService
// and OperatorService) from arbitrary bytes. libprotobuf-mutator is not in
// Debian, so the serialized bytes are mutated: the first byte picks the
// message type, the rest is parsed as it. A message that parses is
// translated as the handler translates it (proto/convert) and run through
// the coordinator's request checks (coordinator/request_checks, ValidateId).
// Properties: nothing crashes or trips a sanitizer; a parsed message
// re-serializes to bytes that parse to the same message; whatever the checks
// accept has valid identifiers, a worker-reportable outcome and bounded
// counters; translation back to proto keeps a report's fields.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/ids.h"
#include "coordinator/coordinator.h"
#include "coordinator/request_checks.h"
#include "coordinator/store/report_limits.h"
#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/convert.h"
#include "sluice/v1/sluice.pb.h"

namespace {

namespace v1 = sluice::v1;

void Check(bool condition, const char* what) {
  if (!condition) {
    // stderr is unbuffered: the reason must reach the log before abort().
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

// Parses `bytes` as M; nullopt-like false when they are not an M. A parsed
// message must survive a round trip through its own serialization.
template <typename M>
bool Parse(const uint8_t* data, size_t size, M* out) {
  if (!out->ParseFromArray(data, static_cast<int>(size))) return false;
  std::string again;
  Check(out->SerializeToString(&again), "a parsed message serializes");
  M reparsed;
  Check(reparsed.ParseFromString(again), "a serialized message parses");
  // Map fields serialize in no fixed order: compare messages, not bytes.
  // A double field may arrive as NaN (the checks reject it later); NaN is
  // never equal to itself, so the comparison treats NaN as equal to NaN.
  google::protobuf::util::DefaultFieldComparator fields;
  fields.set_treat_nan_as_equal(true);
  google::protobuf::util::MessageDifferencer differ;
  differ.set_field_comparator(&fields);
  Check(differ.Compare(reparsed, *out), "a round trip through the wire format keeps the message");
  return true;
}

bool IdOk(const std::string& field, const std::string& value) {
  return sluice::ValidateId(field, value).ok();
}

const sluice::CoordinatorConfig& Config() {
  static const sluice::CoordinatorConfig config;
  return config;
}

void Register(const uint8_t* data, size_t size) {
  v1::RegisterRequest req;
  if (!Parse(data, size, &req)) return;
  // WorkerServiceImpl::Register's translation.
  sluice::WorkerInfo w;
  w.worker_id = req.worker_id();
  w.host = req.host();
  w.slots = req.slots();
  w.labels.assign(req.labels().begin(), req.labels().end());
  w.version = req.version();
  if (!sluice::CheckWorker(w).ok()) return;
  Check(IdOk("worker_id", w.worker_id), "an accepted worker has a valid id");
  Check(w.slots >= 1, "an accepted worker has slots");
  for (const std::string& label : w.labels) Check(IdOk("label", label), "labels are valid ids");
}

void Lease(const uint8_t* data, size_t size) {
  v1::LeaseRequest req;
  if (!Parse(data, size, &req)) return;
  // Coordinator::Lease's checks before anything is read.
  (void)sluice::ValidateId("worker_id", req.worker_id());
  (void)sluice::ValidateId("request_id", req.request_id());
}

void Heartbeat(const uint8_t* data, size_t size) {
  v1::HeartbeatRequest req;
  if (!Parse(data, size, &req)) return;
  (void)sluice::ValidateId("worker_id", req.worker_id());
  for (const std::string& id : req.lease_ids()) (void)sluice::ValidateId("lease_id", id);
}

void Report(const uint8_t* data, size_t size) {
  v1::ReportRequest req;
  if (!Parse(data, size, &req)) return;
  absl::StatusOr<sluice::AttemptReport> report = sluice::FromProto(req);
  if (!report.ok()) {
    Check(report.status().code() == absl::StatusCode::kInvalidArgument,
          "a report that cannot be translated is INVALID_ARGUMENT");
    return;
  }
  // The translation loses nothing the checks look at.
  v1::ReportRequest back;
  sluice::ToProto(*report, &back);
  Check(back.lease_id() == req.lease_id() && back.epoch() == req.epoch() &&
            back.telemetry_events() == req.telemetry_events() &&
            back.telemetry_by_type_size() == req.telemetry_by_type_size(),
        "a translated report converts back to the same fields");
  if (!sluice::CheckReport(*report, Config()).ok()) return;
  Check(IdOk("lease_id", report->lease_id), "an accepted report has a valid lease id");
  Check(report->telemetry_events >= 0, "accepted events are not negative");
  int64_t typed = 0;
  for (const auto& [type, n] : report->telemetry_by_type) {
    Check(n >= 0, "accepted per-type counts are not negative");
    Check(typed <= INT64_MAX - n, "accepted per-type counts cannot overflow their sum");
    typed += n;
  }
}

void ImportBacklog(const uint8_t* data, size_t size) {
  v1::ImportBacklogRequest req;
  if (!Parse(data, size, &req)) return;
  std::vector<sluice::PhaseSpec> phases;
  for (const v1::PhaseSpec& p : req.phases()) phases.push_back(sluice::FromProto(p));
  if (!sluice::CheckBacklog(phases, Config()).ok()) return;
  Check(!phases.empty(), "an accepted import has phases");
  for (const sluice::PhaseSpec& p : phases) {
    Check(IdOk("run_id", p.run_id) && IdOk("phase_id", p.phase_id),
          "accepted phases have valid ids");
  }
}

void StartSession(const uint8_t* data, size_t size) {
  v1::StartSessionRequest req;
  if (!Parse(data, size, &req)) return;
  const sluice::SessionSettings settings = sluice::FromProto(req.settings());
  v1::SessionSettings back;
  sluice::ToProto(settings, &back);
  sluice::SessionSettings again = sluice::FromProto(back);
  Check(again.batch_size == settings.batch_size && again.run_ids == settings.run_ids,
        "settings survive a round trip through the proto");
  if (!req.session_id().empty()) (void)sluice::ValidateId("session_id", req.session_id());
}

void StopSession(const uint8_t* data, size_t size) {
  v1::StopSessionRequest req;
  if (!Parse(data, size, &req)) return;
  if (!req.session_id().empty()) (void)sluice::ValidateId("session_id", req.session_id());
  (void)sluice::CheckBytes("reason", req.reason(), 1024);
}

template <typename M>
void ParseOnly(const uint8_t* data, size_t size) {
  M req;
  (void)Parse(data, size, &req);
}

void PlanSession(const uint8_t* data, size_t size) {
  v1::PlanSessionRequest req;
  if (!Parse(data, size, &req)) return;
  (void)sluice::FromProto(req.settings());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using Handler = void (*)(const uint8_t*, size_t);
  static constexpr Handler kHandlers[] = {
      Register,
      Lease,
      Heartbeat,
      Report,
      ImportBacklog,
      StartSession,
      StopSession,
      ParseOnly<v1::GetStatusRequest>,
      ParseOnly<v1::ResumeLeasingRequest>,
      ParseOnly<v1::GetReportRequest>,
      ParseOnly<v1::ListFingerprintsRequest>,
      ParseOnly<v1::UnblockFingerprintRequest>,
      PlanSession,
  };
  constexpr size_t kCount = sizeof(kHandlers) / sizeof(kHandlers[0]);
  kHandlers[data[0] % kCount](data + 1, size - 1);
  return 0;
}

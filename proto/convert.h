// Conversions between the generated protobuf messages and common/model.h.
// Only the gRPC adapters include this (it pulls in generated headers).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model.h"
#include "sluice/v1/sluice.pb.h"

namespace sluice {

v1::Outcome ToProto(Outcome outcome);
// InvalidArgument for OUTCOME_UNSPECIFIED or an unknown value.
absl::StatusOr<Outcome> FromProto(v1::Outcome outcome);
v1::PhaseState ToProto(PhaseState state);
PhaseState FromProto(v1::PhaseState state);

void ToProto(const LeaseGrant& grant, v1::Lease* out);
LeaseGrant FromProto(const v1::Lease& lease);

void ToProto(const AttemptReport& report, v1::ReportRequest* out);
absl::StatusOr<AttemptReport> FromProto(const v1::ReportRequest& request);

void ToProto(const PhaseSpec& spec, v1::PhaseSpec* out);
PhaseSpec FromProto(const v1::PhaseSpec& spec);

void ToProto(const SessionSettings& settings, v1::SessionSettings* out);
SessionSettings FromProto(const v1::SessionSettings& settings);

void ToProto(const SessionRecord& session, v1::Session* out);
SessionRecord FromProto(const v1::Session& session);

// grpc::StatusCode values equal absl::StatusCode values for every code.
int ToGrpcCode(absl::StatusCode code);

}  // namespace sluice

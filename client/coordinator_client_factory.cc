#include "client/coordinator_client_factory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/grpc_coordinator_client.h"

namespace sluice {
namespace {

// A coordinator that cannot be reached safely: every call fails UNAVAILABLE
// with the reason, and nothing goes over the wire.
class UnreachableCoordinatorClient final : public CoordinatorClient {
 public:
  explicit UnreachableCoordinatorClient(absl::Status why) : why_(std::move(why)) {}

  absl::StatusOr<WorkerRegistration> Register(const WorkerInfo&) override { return why_; }
  absl::StatusOr<LeaseBatch> Lease(const std::string&, const std::string&, int32_t, int64_t,
                                   const std::vector<std::string>&) override {
    return why_;
  }
  absl::StatusOr<std::vector<std::string>> Heartbeat(const std::string&,
                                                     const std::vector<std::string>&,
                                                     int64_t) override {
    return why_;
  }
  absl::StatusOr<ReportDisposition> Report(const AttemptReport&) override { return why_; }
  absl::StatusOr<std::vector<absl::StatusOr<ReportDisposition>>> ReportBatch(
      const std::vector<AttemptReport>&) override {
    return why_;
  }

 private:
  const absl::Status why_;
};

}  // namespace

FailoverCoordinatorClient::Factory MakeCoordinatorClientFactory(
    std::map<std::string, std::shared_ptr<grpc::Channel>> channels, ChannelOptions options,
    std::string token) {
  return [channels = std::move(channels), options = std::move(options), token = std::move(token)](
             const std::string& address) mutable -> std::unique_ptr<CoordinatorClient> {
    std::shared_ptr<grpc::Channel> channel = channels[address];
    if (channel == nullptr) {
      options.address = address;
      absl::StatusOr<std::shared_ptr<grpc::Channel>> made = MakeChannel(options);
      if (!made.ok()) {
        return std::make_unique<UnreachableCoordinatorClient>(absl::UnavailableError(
            absl::StrCat("coordinator ", address, ": cannot build its channel with this worker's ",
                         options.tls_enabled() ? "TLS " : "",
                         "settings, so it is not used: ", made.status().message())));
      }
      channel = *std::move(made);
    }
    return std::make_unique<GrpcCoordinatorClient>(std::move(channel), token);
  };
}

}  // namespace sluice

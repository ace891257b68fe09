// The factory behind the worker's FailoverCoordinatorClient: one
// GrpcCoordinatorClient per coordinator address, all with the same transport
// security and bearer token.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "client/channel.h"
#include "client/failover_coordinator_client.h"

namespace grpc {
class Channel;
}

namespace sluice {

// `channels` holds the channels made at start for the listed addresses (so a
// bad TLS file is a configuration error at start); `options` (address
// ignored) makes the channel of any other address, such as a leader named by
// a standby's answer, with the same TLS settings.
//
// Fails closed: when that channel cannot be built (a TLS file removed or
// made unreadable since start), the address's client answers every call
// UNAVAILABLE saying why, so the failover moves on. It never falls back to a
// plaintext channel, which would send the bearer token in clear.
//
// The returned factory is called under the failover client's lock, one call
// at a time.
FailoverCoordinatorClient::Factory MakeCoordinatorClientFactory(
    std::map<std::string, std::shared_ptr<grpc::Channel>> channels, ChannelOptions options,
    std::string token);

}  // namespace sluice

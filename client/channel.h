// Client side of the coordinator connection, shared by sluice-worker and the
// operator CLI: transport security (TLS, mTLS), message size limits, and the
// bearer token sent with every call.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class Channel;
}
namespace CLI {
class App;
}

namespace sluice {

inline constexpr int kDefaultMaxMessageBytes = 16 * 1024 * 1024;

struct ChannelOptions {
  std::string address;  // HOST:PORT
  // TLS: on when `tls` is set or any tls_* file is given.
  bool tls = false;
  std::string tls_ca_file;      // PEM roots that sign the coordinator's cert; empty: system roots
  std::string tls_cert_file;    // client certificate for mTLS (with tls_key_file)
  std::string tls_key_file;     // its private key
  std::string tls_server_name;  // name checked against the server cert instead of the host
  // Largest message sent or received; a bigger one fails with RESOURCE_EXHAUSTED.
  int max_message_bytes = kDefaultMaxMessageBytes;
  // Bearer token file (--token-file); empty: $SLUICE_TOKEN, else no token.
  std::string token_file;
  // Contents of the three TLS files, once LoadTlsFiles has read them; a
  // non-empty one is used instead of reading its file again (a worker that
  // dropped privileges with --run-as can no longer read them).
  std::string tls_ca_pem;
  std::string tls_cert_pem;
  std::string tls_key_pem;

  bool tls_enabled() const {
    return tls || !tls_ca_file.empty() || !tls_cert_file.empty() || !tls_key_file.empty();
  }
};

// Adds --tls, --tls-ca, --tls-cert, --tls-key, --tls-server-name, --token-file
// and --max-message-bytes to `app` (not --coordinator: callers name it).
void AddChannelFlags(CLI::App* app, ChannelOptions* options);

// A channel per `options`. InvalidArgument (a configuration error, exit 2)
// naming the flag for a missing, unreadable or non-PEM file, a certificate
// without its key or the other way round, a TLS-only option without TLS, or a
// max_message_bytes outside [4096, 1 GiB].
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options);

// Reads the TLS files named in `options` into its *_pem fields, with the
// checks and errors of MakeChannel, so that later channels (to a leader learnt
// from a standby) need no file access.
absl::Status LoadTlsFiles(ChannelOptions* options);

// A plaintext channel to `address` (host:port) with the default message size
// limits; cannot fail. TLS, mTLS and other limits: MakeChannel(ChannelOptions).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// The bearer token: the first non-blank, non-'#' line of options.token_file
// (trimmed), else $SLUICE_TOKEN, else "" (no token). InvalidArgument for an
// unreadable or empty file or a token with white space or control characters.
// The token itself never appears in a message.
absl::StatusOr<std::string> LoadClientToken(const ChannelOptions& options);

// The "authorization" metadata value for `token` ("Bearer <token>").
std::string BearerHeader(const std::string& token);

}  // namespace sluice

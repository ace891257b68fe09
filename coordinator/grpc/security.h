// Transport security for the coordinator's gRPC server: TLS with a server
// certificate, and optionally mTLS (clients must present a certificate signed
// by --tls-client-ca). Without a certificate the server listens in plaintext.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class ServerCredentials;
}

namespace sluice {

struct TlsServerOptions {
  std::string cert_file;       // PEM certificate chain (--tls-cert); empty: plaintext
  std::string key_file;        // PEM private key (--tls-key); required with cert_file
  std::string client_ca_file;  // PEM roots (--tls-client-ca); set: require and verify client certs

  bool enabled() const { return !cert_file.empty(); }
  bool mutual() const { return !client_ca_file.empty(); }
};

// Reads a whole PEM file. InvalidArgument naming `flag` and the path when the
// file is missing, unreadable, empty, larger than 1 MiB or holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path);

// Insecure credentials when !options.enabled(); TLS (or mTLS) credentials
// otherwise. InvalidArgument (a configuration error, exit 2) for an
// inconsistent combination (a key without a certificate, a client CA without
// a certificate) or an unreadable file. The key's content is never logged.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsServerOptions& options);

// True for "127.x.x.x:P", "localhost:P", "[::1]:P" and "unix:..." addresses.
bool IsLoopbackAddress(const std::string& listen_address);

}  // namespace sluice

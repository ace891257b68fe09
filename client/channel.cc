#include "client/channel.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/bounded_file.h"

namespace sluice {
namespace {

constexpr size_t kMaxFileBytes = 1024 * 1024;
constexpr int kMinMessageBytes = 4096;
constexpr int kMaxMessageBytes = 1024 * 1024 * 1024;

absl::StatusOr<std::string> ReadSmallFile(const std::string& flag, const std::string& path) {
  return ReadBoundedRegularFile(flag, path, kMaxFileBytes);
}

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  auto pem = ReadSmallFile(flag, path);
  if (!pem.ok()) return pem.status();
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": not a PEM file (no \"-----BEGIN\" line)"));
  }
  return pem;
}

absl::Status ValidateToken(const std::string& where, std::string_view token) {
  for (char c : token) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the token has white space or a control character"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

void AddChannelFlags(CLI::App* app, ChannelOptions* o) {
  app->add_flag("--tls", o->tls,
                "Connect with TLS, trusting the system roots (implied by --tls-ca/--tls-cert)");
  app->add_option("--tls-ca", o->tls_ca_file,
                  "PEM file of the CA that signed the coordinator's certificate (enables TLS)");
  app->add_option("--tls-cert", o->tls_cert_file,
                  "PEM client certificate, for a coordinator that requires mTLS");
  app->add_option("--tls-key", o->tls_key_file, "PEM private key of --tls-cert");
  app->add_option("--tls-server-name", o->tls_server_name,
                  "Name to verify the coordinator's certificate against (default: its host)");
  app->add_option("--token-file", o->token_file,
                  "File holding the bearer token sent with every call (default: $SLUICE_TOKEN); "
                  "tokens are never accepted on the command line");
  app->add_option("--max-message-bytes", o->max_message_bytes,
                  "Largest gRPC message sent or received")
      ->capture_default_str();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& o) {
  if (o.address.empty()) return absl::InvalidArgumentError("--coordinator is empty");
  if (o.max_message_bytes < kMinMessageBytes || o.max_message_bytes > kMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat("--max-message-bytes ", o.max_message_bytes,
                                                   ": must be between ", kMinMessageBytes, " and ",
                                                   kMaxMessageBytes));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(o.max_message_bytes);
  args.SetMaxSendMessageSize(o.max_message_bytes);
  // Reconnect quickly after a coordinator restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  // Without these a restarted coordinator stayed unreachable ~10 s after it
  // listened again (gRPC re-resolves a failed target at most every 30 s and
  // bounds connects by a 20 s minimum), longer than a typical lease TTL, so
  // workers fenced themselves and their attempts were lost (found by
  // RedisE2ETest.CoordinatorKilledMidDrain...).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1'000);
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 500);
  if (!o.tls_enabled()) {
    if (!o.tls_server_name.empty()) {
      return absl::InvalidArgumentError("--tls-server-name needs TLS (--tls or --tls-ca)");
    }
    return grpc::CreateCustomChannel(o.address, grpc::InsecureChannelCredentials(), args);
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  grpc::SslCredentialsOptions ssl;
  ChannelOptions loaded = o;
  if (absl::Status st = LoadTlsFiles(&loaded); !st.ok()) return st;
  ssl.pem_root_certs = loaded.tls_ca_pem;
  ssl.pem_cert_chain = loaded.tls_cert_pem;
  ssl.pem_private_key = loaded.tls_key_pem;
  if (!o.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(o.tls_server_name);
  }
  return grpc::CreateCustomChannel(o.address, grpc::SslCredentials(ssl), args);
}

absl::Status LoadTlsFiles(ChannelOptions* o) {
  if (o->tls_cert_file.empty() != o->tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  for (auto [flag, path, pem] : {std::tuple{"--tls-ca", &o->tls_ca_file, &o->tls_ca_pem},
                                 std::tuple{"--tls-cert", &o->tls_cert_file, &o->tls_cert_pem},
                                 std::tuple{"--tls-key", &o->tls_key_file, &o->tls_key_pem}}) {
    if (path->empty() || !pem->empty()) continue;
    auto content = ReadPem(flag, *path);
    if (!content.ok()) return content.status();
    *pem = *std::move(content);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadClientToken(const ChannelOptions& o) {
  if (!o.token_file.empty()) {
    auto content = ReadSmallFile("--token-file", o.token_file);
    if (!content.ok()) return content.status();
    std::istringstream lines(*content);
    std::string line;
    while (std::getline(lines, line)) {
      const std::string token(absl::StripAsciiWhitespace(line));
      if (token.empty() || token.front() == '#') continue;
      if (absl::Status st = ValidateToken(absl::StrCat("--token-file ", o.token_file), token);
          !st.ok()) {
        return st;
      }
      return token;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file ", o.token_file, ": no token in the file"));
  }
  const char* env = std::getenv("SLUICE_TOKEN");
  if (env == nullptr || *env == '\0') return std::string();
  const std::string token(absl::StripAsciiWhitespace(env));
  if (absl::Status st = ValidateToken("$SLUICE_TOKEN", token); !st.ok()) return st;
  return token;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  ChannelOptions options;
  options.address = address;
  // Plaintext with default limits cannot fail.
  return *MakeChannel(options);
}

std::string BearerHeader(const std::string& token) { return absl::StrCat("Bearer ", token); }

}  // namespace sluice

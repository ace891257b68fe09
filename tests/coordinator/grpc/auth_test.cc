// Authentication and configuration hygiene without a network: Authenticator
// decisions, the constant-time comparison, token file parsing, client-side
// token and channel options, server credential options, and redaction.
#include "coordinator/grpc/auth.h"

#include <stdlib.h>

#include <string>
#include <vector>

#include "client/channel.h"
#include "common/redact.h"
#include "coordinator/grpc/security.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::ScratchDir;
using ::sluice::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kWorkerToken[] = "worker-token-0123456789abcdef";
constexpr char kBoundToken[] = "bound-token-w1-0123456789abcdef";
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";

std::string Bearer(const std::string& token) { return "Bearer " + token; }

Authenticator MakeAuth() {
  auto auth = Authenticator::Create({{kWorkerToken, ""}, {kBoundToken, "w1"}}, {{kAdminToken, ""}});
  EXPECT_TRUE(auth.ok()) << auth.status();
  return *auth;
}

TEST(ConstantTimeEqualsTest, EqualStringsMatch) {
  EXPECT_TRUE(ConstantTimeEquals("abcdef", "abcdef"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0b", 3)));
}

TEST(ConstantTimeEqualsTest, AnyDifferenceDoesNotMatch) {
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcdeg"));  // last byte
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "bbcdef"));  // first byte
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcde"));   // a prefix
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcabc"));     // the expected value repeated
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(AuthenticatorTest, DisabledAllowsEverything) {
  Authenticator auth;
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Authorize(std::nullopt, CallKind::kWorker, "w1").ok());
  EXPECT_TRUE(auth.Authorize(std::nullopt, CallKind::kOperator, "").ok());
}

TEST(AuthenticatorTest, MissingOrMalformedHeaderIsUnauthenticated) {
  const Authenticator auth = MakeAuth();
  EXPECT_EQ(auth.Authorize(std::nullopt, CallKind::kWorker, "w1").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authorize("", CallKind::kWorker, "w1").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authorize(kWorkerToken, CallKind::kWorker, "w1").code(),  // no scheme
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authorize(std::string("Basic ") + kWorkerToken, CallKind::kWorker, "w1").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authorize("Bearer ", CallKind::kOperator, "").code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthenticatorTest, WrongTokenIsUnauthenticatedAndNotEchoed) {
  const Authenticator auth = MakeAuth();
  const std::string wrong = "wrong-token-0123456789abcdef";
  absl::Status st = auth.Authorize(Bearer(wrong), CallKind::kWorker, "w1");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr(wrong)));
  // A prefix of a valid token, and a valid token with a byte more, are wrong too.
  EXPECT_EQ(auth.Authorize(Bearer(std::string(kWorkerToken).substr(0, 20)), CallKind::kWorker, "w1")
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authorize(Bearer(std::string(kWorkerToken) + "x"), CallKind::kWorker, "w1").code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthenticatorTest, WorkerTokenMayMakeWorkerCallsOnly) {
  const Authenticator auth = MakeAuth();
  EXPECT_TRUE(auth.Authorize(Bearer(kWorkerToken), CallKind::kWorker, "any-worker").ok());
  absl::Status st = auth.Authorize(Bearer(kWorkerToken), CallKind::kOperator, "");
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(st.message()), HasSubstr("operator"));
}

TEST(AuthenticatorTest, BoundWorkerTokenIsValidForItsWorkerOnly) {
  const Authenticator auth = MakeAuth();
  EXPECT_TRUE(auth.Authorize(Bearer(kBoundToken), CallKind::kWorker, "w1").ok());
  EXPECT_EQ(auth.Authorize(Bearer(kBoundToken), CallKind::kWorker, "w2").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(auth.Authorize(Bearer(kBoundToken), CallKind::kWorker, "").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(auth.Authorize(Bearer(kBoundToken), CallKind::kOperator, "").code(),
            absl::StatusCode::kPermissionDenied);
}

// Bug: a token that is not pinned could act as any worker id, including one
// pinned to another token (take over its leases, report for it).
TEST(AuthenticatorTest, PinnedWorkerIdIsReservedForItsToken) {
  const Authenticator auth = MakeAuth();
  const absl::Status st = auth.Authorize(Bearer(kWorkerToken), CallKind::kWorker, "w1");
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("reserved"));
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr(kBoundToken)));
  // Other ids stay open to the unpinned token; the pinned token keeps its id.
  EXPECT_TRUE(auth.Authorize(Bearer(kWorkerToken), CallKind::kWorker, "w2").ok());
  EXPECT_TRUE(auth.Authorize(Bearer(kBoundToken), CallKind::kWorker, "w1").ok());
}

TEST(AuthenticatorTest, AdminTokenMayCallEverything) {
  const Authenticator auth = MakeAuth();
  EXPECT_TRUE(auth.Authorize(Bearer(kAdminToken), CallKind::kOperator, "").ok());
  EXPECT_TRUE(auth.Authorize(Bearer(kAdminToken), CallKind::kWorker, "w1").ok());
  EXPECT_TRUE(auth.Authorize(Bearer(kAdminToken), CallKind::kWorker, "w2").ok());
  // The scheme is case-insensitive (RFC 6750); surrounding blanks are ignored.
  EXPECT_TRUE(
      auth.Authorize(std::string("bearer  ") + kAdminToken + " ", CallKind::kOperator, "").ok());
}

TEST(AuthenticatorTest, AdminOnlyConfigurationRejectsEveryOtherToken) {
  auto auth = Authenticator::Create({}, {{kAdminToken, ""}});
  ASSERT_TRUE(auth.ok());
  EXPECT_TRUE(auth->enabled());
  EXPECT_EQ(auth->Authorize(Bearer(kWorkerToken), CallKind::kWorker, "w1").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(auth->Authorize(Bearer(kAdminToken), CallKind::kWorker, "w1").ok());
}

TEST(AuthenticatorTest, SameTokenAsWorkerAndAdminIsRejected) {
  auto auth = Authenticator::Create({{kWorkerToken, ""}}, {{kWorkerToken, ""}});
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(auth.status().message()), Not(HasSubstr(kWorkerToken)));
}

TEST(TokenFileTest, ParsesPlainAndBoundTokensCommentsAndBlankLines) {
  const std::string content = std::string("# worker tokens\n\n") + kWorkerToken +
                              "\r\n  w1:" + kBoundToken + "  \nhost.a:b-1:" + kAdminToken + "\n";
  auto entries = ParseTokenFile("workers.tokens", content, TokenFileKind::kWorker);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].token, kWorkerToken);
  EXPECT_EQ((*entries)[0].worker_id, "");
  EXPECT_EQ((*entries)[1].token, kBoundToken);
  EXPECT_EQ((*entries)[1].worker_id, "w1");
  // Worker ids may hold ':'; the token is after the last one.
  EXPECT_EQ((*entries)[2].worker_id, "host.a:b-1");
  EXPECT_EQ((*entries)[2].token, kAdminToken);
}

struct BadTokenFile {
  std::string content;
  std::string reason;
};

TEST(TokenFileTest, RejectsMalformedFilesWithFileLineAndNoSecret) {
  const std::vector<BadTokenFile> cases = {
      {"\n\nshort-secret\n", "t.tokens:3: token is 12 characters long"},
      {std::string(kWorkerToken) + "\ntoken with-spaces-0123456789\n",
       "t.tokens:2: token has a forbidden character"},
      {std::string("bad/worker:") + kWorkerToken + "\n", "t.tokens:1: worker id has forbidden"},
      {std::string(":") + kWorkerToken + "\n", "t.tokens:1: worker id is empty"},
      {std::string(kWorkerToken) + "\nw1:" + kWorkerToken + "\n",
       "t.tokens:2: the same token appears on an earlier line"},
      {"", "t.tokens: no token in the file"},
      {"# only a comment\n\n", "t.tokens: no token in the file"},
      {std::string(600, 'x') + "\n", "t.tokens:1: token is 600 characters long"},
  };
  for (const BadTokenFile& c : cases) {
    auto entries = ParseTokenFile("t.tokens", c.content, TokenFileKind::kWorker);
    ASSERT_FALSE(entries.ok()) << c.reason;
    EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(entries.status().message()), StartsWith(c.reason));
    EXPECT_THAT(std::string(entries.status().message()), Not(HasSubstr(kWorkerToken)));
    EXPECT_THAT(std::string(entries.status().message()), Not(HasSubstr("short-secret")));
  }
}

TEST(TokenFileTest, AdminTokensAreNotBoundToAWorker) {
  auto entries = ParseTokenFile("admin.tokens", std::string("w1:") + kAdminToken + "\n",
                                TokenFileKind::kAdmin);
  ASSERT_FALSE(entries.ok());
  EXPECT_THAT(std::string(entries.status().message()),
              StartsWith("admin.tokens:1: admin tokens are not bound to a worker"));
}

TEST(TokenFileTest, MissingFileNamesThePath) {
  ScratchDir dir;
  auto auth = Authenticator::FromFiles(dir.File("nope.tokens"), "");
  ASSERT_FALSE(auth.ok());
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(auth.status().message()), HasSubstr(dir.File("nope.tokens")));
  EXPECT_THAT(std::string(auth.status().message()), HasSubstr("No such file"));
}

TEST(TokenFileTest, FromFilesLoadsBothKinds) {
  ScratchDir dir;
  WriteFile(dir.File("w.tokens"), std::string("w1:") + kBoundToken + "\n");
  WriteFile(dir.File("a.tokens"), std::string(kAdminToken) + "\n");
  auto auth = Authenticator::FromFiles(dir.File("w.tokens"), dir.File("a.tokens"));
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(auth->worker_token_count(), 1u);
  EXPECT_EQ(auth->admin_token_count(), 1u);
  EXPECT_TRUE(auth->Authorize(Bearer(kBoundToken), CallKind::kWorker, "w1").ok());
  EXPECT_TRUE(auth->Authorize(Bearer(kAdminToken), CallKind::kOperator, "").ok());
}

// Restores an environment variable when the test ends.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = getenv(name);
    if (old != nullptr) old_ = old;
    had_ = old != nullptr;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(ClientTokenTest, FromFileThenEnvironmentThenNone) {
  ScratchDir dir;
  WriteFile(dir.File("token"), std::string("# mine\n\n  ") + kWorkerToken + "  \n");
  ScopedEnv env("SLUICE_TOKEN", kAdminToken);
  ChannelOptions o;
  o.token_file = dir.File("token");
  EXPECT_EQ(*LoadClientToken(o), kWorkerToken);  // the file wins
  o.token_file.clear();
  EXPECT_EQ(*LoadClientToken(o), kAdminToken);
  ScopedEnv unset("SLUICE_TOKEN", nullptr);
  EXPECT_EQ(*LoadClientToken(o), "");
}

TEST(ClientTokenTest, BadTokenFilesAreConfigurationErrors) {
  ScratchDir dir;
  ChannelOptions o;
  o.token_file = dir.File("missing");
  EXPECT_EQ(LoadClientToken(o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(LoadClientToken(o).status().message()), HasSubstr("--token-file"));
  WriteFile(dir.File("empty"), "\n# nothing\n");
  o.token_file = dir.File("empty");
  EXPECT_THAT(std::string(LoadClientToken(o).status().message()), HasSubstr("no token"));
  WriteFile(dir.File("spaces"), "two words-0123456789\n");
  o.token_file = dir.File("spaces");
  auto st = LoadClientToken(o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr("words-0123456789")));
}

TEST(ChannelOptionsTest, BadTlsOptionsAreConfigurationErrors) {
  ScratchDir dir;
  WriteFile(dir.File("not.pem"), "hello\n");
  ChannelOptions o;
  o.address = "127.0.0.1:1";
  o.tls_ca_file = dir.File("missing.pem");
  auto ch = MakeChannel(o);
  EXPECT_EQ(ch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ch.status().message()), HasSubstr("--tls-ca " + dir.File("missing.pem")));
  o.tls_ca_file = dir.File("not.pem");
  EXPECT_THAT(std::string(MakeChannel(o).status().message()), HasSubstr("not a PEM file"));
  o.tls_ca_file.clear();
  o.tls_cert_file = dir.File("not.pem");
  EXPECT_THAT(std::string(MakeChannel(o).status().message()), HasSubstr("go together"));
  ChannelOptions plain;
  plain.address = "127.0.0.1:1";
  plain.tls_server_name = "localhost";
  EXPECT_EQ(MakeChannel(plain).status().code(), absl::StatusCode::kInvalidArgument);
  plain.tls_server_name.clear();
  plain.max_message_bytes = 10;
  EXPECT_THAT(std::string(MakeChannel(plain).status().message()), HasSubstr("--max-message-bytes"));
  plain.max_message_bytes = kDefaultMaxMessageBytes;
  EXPECT_TRUE(MakeChannel(plain).ok());
}

TEST(ServerCredentialsTest, BadTlsOptionsAreConfigurationErrors) {
  ScratchDir dir;
  WriteFile(dir.File("not.pem"), "hello\n");
  TlsServerOptions o;
  EXPECT_TRUE(MakeServerCredentials(o).ok());  // plaintext
  o.key_file = dir.File("k.pem");
  EXPECT_THAT(std::string(MakeServerCredentials(o).status().message()),
              HasSubstr("--tls-key needs --tls-cert"));
  o = TlsServerOptions{};
  o.client_ca_file = dir.File("ca.pem");
  EXPECT_EQ(MakeServerCredentials(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = TlsServerOptions{};
  o.cert_file = dir.File("missing.pem");
  EXPECT_THAT(std::string(MakeServerCredentials(o).status().message()),
              HasSubstr("--tls-cert needs --tls-key"));
  o.key_file = dir.File("not.pem");
  EXPECT_THAT(std::string(MakeServerCredentials(o).status().message()),
              HasSubstr("--tls-cert " + dir.File("missing.pem")));
  o.cert_file = dir.File("not.pem");
  EXPECT_THAT(std::string(MakeServerCredentials(o).status().message()),
              HasSubstr("not a PEM file"));
}

TEST(ServerCredentialsTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:7400"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:7400"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:7400"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/tmp/sluice.sock"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:7400"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:7400"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.5:7400"));
  EXPECT_FALSE(IsLoopbackAddress("coord.example.com:7400"));
}

TEST(RedactTest, StoreUrlPasswordsAreRedacted) {
  EXPECT_EQ(RedactUrl("sqlite://.sluice/state.db"), "sqlite://.sluice/state.db");
  EXPECT_EQ(RedactUrl("redis://localhost:6379/0"), "redis://localhost:6379/0");
  EXPECT_EQ(RedactUrl("redis://:hunter2@localhost:6379/0"), "redis://:<redacted>@localhost:6379/0");
  EXPECT_EQ(RedactUrl("redis://alice:hunter2@h:1?namespace=x"),
            "redis://alice:<redacted>@h:1?namespace=x");
  EXPECT_EQ(RedactUrl("redis://hunter2@h"), "redis://<redacted>@h");
  EXPECT_EQ(RedactUrl("redis://:pa/ss?w@h:1/2"), "redis://:<redacted>@h:1/2");
  EXPECT_EQ(RedactUrl("redis+unix:///run/redis.sock?db=2&password=hunter2&namespace=n"),
            "redis+unix:///run/redis.sock?db=2&password=<redacted>&namespace=n");
  EXPECT_EQ(RedactUrl("x://h?token=abc#frag"), "x://h?token=<redacted>#frag");
}

TEST(RedactTest, SecretLookingNames) {
  EXPECT_TRUE(IsSecretName("OPENAI_API_KEY"));
  EXPECT_TRUE(IsSecretName("github_token"));
  EXPECT_TRUE(IsSecretName("DB_PASSWORD"));
  EXPECT_TRUE(IsSecretName("Client-Secret"));
  EXPECT_FALSE(IsSecretName("TELEMETRY_DB_ENABLED"));
  EXPECT_FALSE(IsSecretName("PATH"));
}

}  // namespace
}  // namespace sluice

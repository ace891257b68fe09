// Redaction for --print-config and logs: secrets are replaced by kRedacted,
// never printed. Pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

inline constexpr char kRedacted[] = "<redacted>";

// `url` with the password of its user-info ("redis://user:PW@host" ->
// "redis://user:<redacted>@host"; user-info without ':' is redacted whole) and
// the values of secret-looking query parameters (IsSecretName) redacted.
std::string RedactUrl(std::string_view url);

// True for names that usually hold secrets: containing (case-insensitively)
// TOKEN, SECRET, PASSWORD, PASSWD, PASS, KEY, CREDENTIAL, AUTH or COOKIE.
bool IsSecretName(std::string_view name);

// The rule for variables a phase inherits from its worker: every inherited
// variable passes except sluice's own secrets, the names starting with
// "SLUICE_" that IsSecretName (SLUICE_TOKEN, SLUICE_ADMIN_TOKEN_FILE,
// SLUICE_WORKER_TOKENS_FILE, a SLUICE_*KEY* path, ...), for which this
// returns true. A value the operator gives the phase explicitly (--env) is
// never scrubbed.
bool IsScrubbedFromPhases(std::string_view name);

}  // namespace sluice

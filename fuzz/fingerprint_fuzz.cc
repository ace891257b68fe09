// libFuzzer target: NormalizeErrorText and ComputeFingerprint on arbitrary
// bytes. Properties: no crash or sanitizer report; the normalised text has no
// ASCII upper case, no tab/newline/CR/FF, no double space and no space at
// either end; a fingerprint is deterministic, its key is
// "OUTCOME|exit-class|text" with at most 200 bytes of text, and its id is
// FingerprintId(key): 12 lowercase hex digits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/fingerprint.h"
#include "common/model.h"

namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    __builtin_printf("property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  // Byte 0: outcome; bytes 1-2: exit code / signal; the rest: the error text.
  const sluice::Outcome outcomes[] = {sluice::Outcome::kSucceeded, sluice::Outcome::kFailed,
                                      sluice::Outcome::kTimedOut,  sluice::Outcome::kKilled,
                                      sluice::Outcome::kCancelled, sluice::Outcome::kLost};
  const sluice::Outcome outcome = outcomes[data[0] % 6];
  const int exit_code = static_cast<int8_t>(data[1]);
  const int signal = data[2] % 65;
  const std::string_view text(reinterpret_cast<const char*>(data + 3), size - 3);

  const std::string normalized = sluice::NormalizeErrorText(text);
  for (char c : normalized) {
    Check(!(c >= 'A' && c <= 'Z'), "normalised text is lower case");
    Check(c != '\t' && c != '\n' && c != '\r' && c != '\f', "white space is collapsed");
  }
  Check(normalized.find("  ") == std::string::npos, "no double space");
  Check(normalized.empty() || (normalized.front() != ' ' && normalized.back() != ' '), "trimmed");

  const sluice::Fingerprint a = sluice::ComputeFingerprint(outcome, exit_code, signal, text);
  const sluice::Fingerprint b = sluice::ComputeFingerprint(outcome, exit_code, signal, text);
  Check(a.key == b.key && a.id == b.id, "deterministic");
  const std::string prefix = std::string(sluice::OutcomeName(outcome)) + "|" +
                             sluice::ExitClass(outcome, exit_code, signal) + "|";
  Check(a.key.rfind(prefix, 0) == 0, "key starts with OUTCOME|exit-class|");
  Check(a.key.size() - prefix.size() <= 200, "key text is at most 200 bytes");
  Check(a.id == sluice::FingerprintId(a.key), "id is FingerprintId(key)");
  Check(a.id.size() == 12, "id has 12 characters");
  for (char c : a.id) {
    Check((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), "id is lowercase hex");
  }
  return 0;
}

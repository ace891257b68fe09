// libFuzzer target: CommandTemplate::Parse + Expand with fuzzed identifiers.
//
// Two modes, picked by the first byte:
//  - raw: the template text is fuzzed; Parse and Expand must not crash, and
//    when Expand succeeds every argv byte is an identifier character or a byte
//    of the template text, so no word can hold an identifier that failed
//    validation for a forbidden character;
//  - structured: the template is built from known words (literals,
//    placeholder-only words, literal+placeholder+literal), so each argv word's
//    origin is known. Expand must succeed exactly when every identifier the
//    template uses is valid (attempt >= 1); then every word that came from a
//    placeholder equals the identifier, which is valid, and the argv has one
//    word per template word.
#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/model.h"
#include "worker/command_template.h"

namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    __builtin_printf("property violated: %s\n", what);
    std::abort();
  }
}

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

constexpr std::array<const char*, 5> kPlaceholders = {"run_id", "phase_id", "attempt", "lease_id",
                                                      "session_id"};

sluice::PhaseIdentity FuzzIdentity(FuzzedDataProvider& in) {
  sluice::PhaseIdentity id;
  id.run_id = in.ConsumeRandomLengthString(160);
  id.phase_id = in.ConsumeRandomLengthString(160);
  id.attempt = in.ConsumeIntegralInRange<int32_t>(-2, 1000);
  id.lease_id = in.ConsumeRandomLengthString(160);
  id.session_id = in.ConsumeRandomLengthString(160);
  return id;
}

// The value a placeholder expands to, and whether it is acceptable.
std::string ValueOf(const sluice::PhaseIdentity& id, size_t placeholder, bool* valid) {
  switch (placeholder) {
    case 0:
      *valid = sluice::IsValidId(id.run_id);
      return id.run_id;
    case 1:
      *valid = sluice::IsValidId(id.phase_id);
      return id.phase_id;
    case 2:
      *valid = id.attempt >= 1;
      return std::to_string(id.attempt);
    case 3:
      *valid = sluice::IsValidId(id.lease_id);
      return id.lease_id;
    default:
      *valid = sluice::IsValidId(id.session_id);
      return id.session_id;
  }
}

// A literal word with nothing a template would interpret: no spaces, quotes,
// backslashes or braces.
std::string Literal(FuzzedDataProvider& in) {
  static constexpr char kAlphabet[] = "abcXYZ019_-=./,:@%+";
  std::string word;
  const size_t n = in.ConsumeIntegralInRange<size_t>(0, 8);
  for (size_t i = 0; i < n; ++i) {
    word += kAlphabet[in.ConsumeIntegralInRange<size_t>(0, sizeof(kAlphabet) - 2)];
  }
  return word;
}

void RawMode(FuzzedDataProvider& in) {
  const sluice::PhaseIdentity id = FuzzIdentity(in);
  const std::string text = in.ConsumeRemainingBytesAsString();
  auto parsed = sluice::CommandTemplate::Parse(text);
  if (!parsed.ok()) return;
  auto argv = parsed->Expand(id);
  if (!argv.ok()) return;
  Check(argv->size() == parsed->words().size(), "one argv word per template word");
  // Substituted values are valid identifiers, so every byte of argv is an
  // identifier character or one the template text itself holds: a byte of an
  // invalid identifier that is neither can never get in.
  bool in_text[256] = {};
  for (char c : text) in_text[static_cast<unsigned char>(c)] = true;
  for (const std::string& word : *argv) {
    for (char c : word) {
      Check(in_text[static_cast<unsigned char>(c)] || IsIdChar(c),
            "argv holds only template bytes and identifier characters");
    }
  }
}

void StructuredMode(FuzzedDataProvider& in) {
  struct Expected {
    std::string prefix;
    int placeholder = -1;  // index into kPlaceholders, or -1 for a pure literal
    std::string suffix;
  };
  std::vector<Expected> words;
  std::string text;
  const size_t n = in.ConsumeIntegralInRange<size_t>(1, 6);
  for (size_t i = 0; i < n; ++i) {
    Expected w;
    const int kind = in.ConsumeIntegralInRange<int>(0, 2);
    if (kind != 1) w.prefix = Literal(in);
    if (kind != 0) w.placeholder = in.ConsumeIntegralInRange<int>(0, kPlaceholders.size() - 1);
    if (kind == 2) w.suffix = Literal(in);
    if (kind == 0 && w.prefix.empty()) w.prefix = "x";  // an empty literal is no word
    if (!text.empty()) text += ' ';
    text += w.prefix;
    if (w.placeholder >= 0) text += std::string("{") + kPlaceholders[w.placeholder] + "}";
    text += w.suffix;
    words.push_back(std::move(w));
  }
  const sluice::PhaseIdentity id = FuzzIdentity(in);
  auto parsed = sluice::CommandTemplate::Parse(text);
  Check(parsed.ok(), "a well-formed template parses");
  bool all_valid = true;
  for (const Expected& w : words) {
    if (w.placeholder < 0) continue;
    bool valid = false;
    ValueOf(id, static_cast<size_t>(w.placeholder), &valid);
    all_valid = all_valid && valid;
  }
  auto argv = parsed->Expand(id);
  Check(argv.ok() == all_valid, "Expand succeeds exactly when every used identifier is valid");
  if (!argv.ok()) return;
  Check(argv->size() == words.size(), "one argv word per template word");
  for (size_t i = 0; i < words.size(); ++i) {
    const Expected& w = words[i];
    if (w.placeholder < 0) {
      Check((*argv)[i] == w.prefix, "a literal word is unchanged");
      continue;
    }
    bool valid = false;
    const std::string value = ValueOf(id, static_cast<size_t>(w.placeholder), &valid);
    Check(valid, "a substituted identifier is valid");
    Check((*argv)[i] == w.prefix + value + w.suffix, "the word is prefix + identifier + suffix");
    if (w.prefix.empty() && w.suffix.empty()) {
      Check((*argv)[i] == value, "a placeholder word equals the identifier");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeBool()) {
    StructuredMode(in);
  } else {
    RawMode(in);
  }
  return 0;
}

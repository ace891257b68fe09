#include "common/fingerprint.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "re2/re2.h"

namespace sluice {
namespace {

// Bytes of normalised text that go into a fingerprint key.
constexpr size_t kMaxKeyTextBytes = 200;

// One path segment (after lower-casing).
constexpr char kSegment[] = "[a-z0-9_.~+@%-]+";

// All patterns run on lower-cased text in Latin-1 mode: every byte is one
// character, so arbitrary (even invalid UTF-8) input is handled and multi-byte
// UTF-8 sequences pass through untouched because no pattern names a byte >= 0x80.
RE2::Options ByteOptions() {
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingLatin1);
  return options;
}

// The compiled patterns, built once on first use. RE2 objects are safe for
// concurrent matching, and a function-local static is initialised
// thread-safely, so NormalizeErrorText needs no lock.
struct Patterns {
  Patterns() = default;

  // scheme, authority, rest of a URL.
  RE2 url{R"(\b([a-z][a-z0-9+.-]*://)([^\s/?#'"<>()\[\]{}]*)([^\s'"<>()\[\]{}]*))", ByteOptions()};
  RE2 iso_datetime{
      R"(\b\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:z|[+-]\d{2}(?::?\d{2})?)?)",
      ByteOptions()};
  RE2 ymd_date{R"(\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b)", ByteOptions()};
  RE2 dmy_date{R"(\b\d{1,2}/\d{1,2}/\d{2,4}\b)", ByteOptions()};
  RE2 time{R"(\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?:z|[+-]\d{2}:?\d{2})?)", ByteOptions()};
  // A path candidate: the character before it (kept) and the candidate
  // itself; the callback decides whether the candidate really is a path.
  // A separator is a slash, a backslash, or a doubled backslash (Windows paths
  // as JSON or a Python repr quotes them).
  RE2 path{std::string(R"(([^a-z0-9_.~+@%\\/-])((?:[a-z]:|\\\\)?(?:\\\\|[\\/])?)") + kSegment +
               R"((?:(?:\\\\|[\\/]))" + kSegment + R"()*(?:\\\\|[\\/])?))",
           ByteOptions()};
  RE2 uuid{R"(\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)", ByteOptions()};
  RE2 hex_address{R"(\b0x[0-9a-f]+\b)", ByteOptions()};
  RE2 host_port{
      R"((?:\b(?:localhost|(?:\d{1,3}\.){3}\d{1,3})|\[[0-9a-f:.]*:[0-9a-f:.]*\]):\d{1,5}\b)",
      ByteOptions()};
  RE2 ipv4{R"(\b(?:\d{1,3}\.){3}\d{1,3}\b)", ByteOptions()};
  // "request_id": "…", trace-id=…, x-request-id: …
  RE2 id_value{
      R"(\b((?:x-)?(?:request|req|trace|span|correlation|message|msg)[_-]?id)(['"]?\s*[:=]\s*['"]?)[a-z0-9][a-z0-9_.:-]*)",
      ByteOptions()};
  // req_011CWQs7…, msg_01…, toolu_01…; the callback insists on a digit.
  RE2 prefixed_id{R"(\b(?:req|msg|toolu|chatcmpl|cmpl|trace|span)[_-]([a-z0-9]{6,})\b)",
                  ByteOptions()};
  RE2 hex_word{R"(\b[0-9a-f]{7,40}\b)", ByteOptions()};
  RE2 long_token{R"([a-z0-9]{16,})", ByteOptions()};
  RE2 compact_duration{R"(\b(?:\d+(?:\.\d+)?(?:ms|us|\xc2\xb5s|ns|h|m|s))+\b)", ByteOptions()};
  RE2 worded_duration{
      R"(\b\d+(?:\.\d+)?\s?(?:milliseconds?|msecs?|ms|seconds?|secs?|minutes?|mins?|hours?|hrs?)\b)",
      ByteOptions()};
  RE2 line_column{R"(\b(line|lineno|column|col)\s*[=:]?\s*\d+)", ByteOptions()};
  RE2 number{R"(\d+(?:\.\d+)*)", ByteOptions()};
  RE2 space{R"(\s+)", ByteOptions()};
};

const Patterns& GetPatterns() {
  static const Patterns* const patterns = new Patterns();  // never destroyed
  return *patterns;
}

std::string_view View(const re2::StringPiece& piece) {
  return std::string_view(piece.data(), piece.size());
}

// Replaces every match of `re` in `*text` with `fn(groups)`, where groups[0]
// is the whole match and groups[i] the i-th capture (empty when unmatched).
template <typename Fn>
void ReplaceEach(const RE2& re, std::string* text, Fn fn) {
  const int n = re.NumberOfCapturingGroups() + 1;
  std::vector<re2::StringPiece> pieces(static_cast<size_t>(n));
  std::vector<std::string_view> groups(static_cast<size_t>(n));
  const re2::StringPiece input(*text);
  std::string out;
  out.reserve(text->size());
  size_t pos = 0;
  while (pos < text->size() &&
         re.Match(input, pos, text->size(), RE2::UNANCHORED, pieces.data(), n)) {
    const size_t start = static_cast<size_t>(pieces[0].data() - text->data());
    const size_t end = start + pieces[0].size();
    for (size_t i = 0; i < groups.size(); ++i) groups[i] = View(pieces[i]);
    out.append(*text, pos, start - pos);
    out += fn(groups);
    if (end == start) {  // an empty match: keep one character and move on
      if (end < text->size()) out += (*text)[end];
      pos = end + 1;
    } else {
      pos = end;
    }
  }
  if (pos < text->size()) out.append(*text, pos, std::string::npos);
  *text = std::move(out);
}

bool IsSeparator(char c) { return c == '/' || c == '\\'; }

bool HasDigit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

bool HasLetter(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return absl::ascii_isalpha(c); });
}

// "x.py", "archive.tar.gz": a dot that is not the first character, followed
// by 1..8 letters/digits including at least one letter.
bool HasFileExtension(std::string_view segment) {
  const size_t dot = segment.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const std::string_view ext = segment.substr(dot + 1);
  if (ext.empty() || ext.size() > 8) return false;
  return std::all_of(ext.begin(), ext.end(), [](char c) { return absl::ascii_isalnum(c); }) &&
         HasLetter(ext);
}

// Decides whether a slash-joined candidate is a path. Words joined by one
// slash ("collection/import", "and/or", "application/json") are not.
bool IsPath(std::string_view raw) {
  const std::string unescaped =
      absl::StrReplaceAll(absl::string_view(raw.data(), raw.size()), {{"\\\\", "\\"}});
  const std::string_view token = unescaped;
  if (token.size() >= 3 && token[1] == ':' && IsSeparator(token[2])) return true;  // c:\ or c:/
  if (token.substr(0, 2) == "\\\\") return true;                                   // UNC
  if (!token.empty() && IsSeparator(token[0])) return true;                        // /usr/…
  for (std::string_view prefix : {"./", ".\\", "../", "..\\", "~/", "~\\"}) {
    if (token.substr(0, prefix.size()) == prefix) return true;
  }
  std::string_view body = token;
  while (!body.empty() && IsSeparator(body.back())) body.remove_suffix(1);
  const auto separators = std::count_if(body.begin(), body.end(), IsSeparator);
  if (separators >= 2) return true;
  if (separators == 0) return false;
  const size_t last = body.find_last_of("/\\");
  return HasFileExtension(body.substr(last + 1));
}

std::string MaskUrl(const std::vector<std::string_view>& g) {
  std::string_view rest = g[3];
  size_t trailing = 0;  // sentence punctuation after the URL is not part of it
  while (trailing < rest.size() &&
         std::string_view(".,;:!?").find(rest[rest.size() - 1 - trailing]) !=
             std::string_view::npos) {
    ++trailing;
  }
  const std::string_view kept_tail = rest.substr(rest.size() - trailing);
  rest.remove_suffix(trailing);
  std::string out = std::string(g[1]) + std::string(g[2]);
  if (!rest.empty() && rest != "/") out += "/<path>";
  out += kept_tail;
  return out;
}

std::string MaskPath(const std::vector<std::string_view>& g) {
  std::string_view token = g[2];
  size_t dots = 0;  // a full stop ending a sentence is not part of the path
  while (dots < token.size() && token[token.size() - 1 - dots] == '.') ++dots;
  const std::string_view candidate = token.substr(0, token.size() - dots);
  if (candidate.empty() || !IsPath(candidate)) return std::string(g[0]);
  return std::string(g[1]) + "<path>" + std::string(token.substr(candidate.size()));
}

}  // namespace

std::string NormalizeErrorText(std::string_view text) {
  const Patterns& p = GetPatterns();
  // Leading and trailing spaces give every pattern a delimiter to anchor on;
  // the final trim removes them.
  std::string s = " " + std::string(text) + " ";
  absl::AsciiStrToLower(&s);

  // Order matters: wide structures first (URLs, timestamps, paths) so their
  // digits and slashes are gone before the narrower rules run; plain numbers last.
  ReplaceEach(p.url, &s, MaskUrl);
  RE2::GlobalReplace(&s, p.iso_datetime, "<date> <time>");
  RE2::GlobalReplace(&s, p.ymd_date, "<date>");
  RE2::GlobalReplace(&s, p.dmy_date, "<date>");
  RE2::GlobalReplace(&s, p.time, "<time>");
  ReplaceEach(p.path, &s, MaskPath);
  RE2::GlobalReplace(&s, p.uuid, "<uuid>");
  RE2::GlobalReplace(&s, p.hex_address, "<hex>");
  RE2::GlobalReplace(&s, p.host_port, "<host>:<port>");
  RE2::GlobalReplace(&s, p.ipv4, "<host>");
  RE2::GlobalReplace(&s, p.id_value, "\\1\\2<id>");
  ReplaceEach(p.prefixed_id, &s, [](const std::vector<std::string_view>& g) {
    return HasDigit(g[1]) ? std::string("<id>") : std::string(g[0]);
  });
  ReplaceEach(p.hex_word, &s, [](const std::vector<std::string_view>& g) {
    return HasDigit(g[0]) && HasLetter(g[0]) ? std::string("<hex>") : std::string(g[0]);
  });
  ReplaceEach(p.long_token, &s, [](const std::vector<std::string_view>& g) {
    return HasDigit(g[0]) && HasLetter(g[0]) ? std::string("<id>") : std::string(g[0]);
  });
  RE2::GlobalReplace(&s, p.compact_duration, "<dur>");
  RE2::GlobalReplace(&s, p.worded_duration, "<dur>");
  RE2::GlobalReplace(&s, p.line_column, "\\1 <n>");
  RE2::GlobalReplace(&s, p.number, "<n>");
  RE2::GlobalReplace(&s, p.space, " ");
  const size_t first = s.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(' ') - first + 1);
}

std::string ExitClass(Outcome outcome, int exit_code, int signal) {
  switch (outcome) {
    case Outcome::kSucceeded:
      return "ok";
    case Outcome::kFailed:
      return signal != 0 ? absl::StrCat("signal:", signal) : absl::StrCat("exit:", exit_code);
    case Outcome::kTimedOut:
      return "timeout";
    case Outcome::kKilled:
      return signal != 0 ? absl::StrCat("signal:", signal) : std::string("killed");
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kLost:
      return "lost";
    case Outcome::kStartFailed:
      return "start_failed";
  }
  return "unknown";  // only reachable through a cast of an out-of-range integer
}

Fingerprint ComputeFingerprint(Outcome outcome, int exit_code, int signal,
                               std::string_view error_text) {
  const std::string normalized = NormalizeErrorText(error_text);
  size_t cut = std::min(kMaxKeyTextBytes, normalized.size());
  // Never split a UTF-8 sequence: back up to the start of the character.
  while (cut > 0 && cut < normalized.size() &&
         (static_cast<unsigned char>(normalized[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  Fingerprint fp;
  fp.key = std::string(OutcomeName(outcome)) + "|" + ExitClass(outcome, exit_code, signal) + "|" +
           normalized.substr(0, cut);
  fp.id = FingerprintId(fp.key);
  return fp;
}

std::string FingerprintId(std::string_view key) {
  // 64-bit FNV-1a; the id is the top 48 bits, i.e. the first 12 of the 16 hex digits.
  uint64_t hash = 14695981039346656037ULL;
  for (char c : key) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return absl::StrCat(absl::Hex(hash >> 16, absl::kZeroPad12));
}

}  // namespace sluice

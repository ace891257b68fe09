#include "worker/command_template.h"

#include <array>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace sluice {
namespace {

constexpr std::array<std::string_view, 5> kPlaceholders = {"run_id", "phase_id", "attempt",
                                                           "lease_id", "session_id"};

bool IsKnownPlaceholder(std::string_view name) {
  for (std::string_view known : kPlaceholders) {
    if (name == known) return true;
  }
  return false;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

// The grammar is a small subset of POSIX shell word splitting, so a template
// written for a shell reads the same here:
//   - blanks (space, tab, newline) separate words;
//   - '...' is literal, backslashes included;
//   - "..." is literal except that a backslash escapes " \ { } (any other
//     backslash is kept, as in sh);
//   - outside quotes a backslash makes the next character literal, and
//     backslash-newline joins lines;
//   - {name} is a placeholder anywhere, also inside quotes, so
//     '--label={run_id} x' stays one word; \{ and \} (outside single quotes)
//     are literal braces.
// $, `, ;, |, &, <, >, *, ?, ~ are ordinary characters: there is no shell.
absl::StatusOr<CommandTemplate> CommandTemplate::Parse(std::string_view text) {
  std::vector<std::string> words;
  std::vector<Word> parsed;
  // The word being scanned: started (an empty '' counts), display form, pieces.
  bool started = false;
  std::string display;
  Word pieces;
  auto add_literal = [&](char c) {
    started = true;
    display += c;
    if (pieces.empty() || pieces.back().placeholder) pieces.push_back({});
    pieces.back().text += c;
  };
  auto add_placeholder = [&](std::string_view name) {
    started = true;
    absl::StrAppend(&display, "{", std::string(name), "}");
    pieces.push_back({true, std::string(name)});
  };
  auto finish_word = [&] {
    if (!started) return;
    words.push_back(std::move(display));
    parsed.push_back(std::move(pieces));
    started = false;
    display.clear();
    pieces.clear();
  };
  enum class Quote { kNone, kSingle, kDouble } quote = Quote::kNone;
  size_t quote_start = 0;

  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '{') {
      const size_t close = text.find('}', i + 1);
      const std::string_view name =
          close == std::string_view::npos ? std::string_view() : text.substr(i + 1, close - i - 1);
      bool well_formed = close != std::string_view::npos && !name.empty();
      for (char n : name) well_formed = well_formed && IsNameChar(n);
      if (!well_formed) {
        return absl::InvalidArgumentError(
            absl::StrCat("command template: unmatched '{' at position ", i + 1,
                         " (placeholders are {run_id} {phase_id} {attempt} {lease_id} "
                         "{session_id}; write \\{ for a literal brace)"));
      }
      if (!IsKnownPlaceholder(name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "command template: unknown placeholder {", std::string(name), "} at position ", i + 1,
            " (known: {run_id} {phase_id} {attempt} {lease_id} {session_id})"));
      }
      add_placeholder(name);
      i = close;
      continue;
    }
    if (c == '}') {
      return absl::InvalidArgumentError(absl::StrCat("command template: unmatched '}' at position ",
                                                     i + 1, " (write \\} for a literal brace)"));
    }
    switch (quote) {
      case Quote::kSingle:
        if (c == '\'') {
          quote = Quote::kNone;
        } else {
          add_literal(c);
        }
        break;
      case Quote::kDouble:
        if (c == '"') {
          quote = Quote::kNone;
        } else if (c == '\\' && i + 1 < text.size() &&
                   (text[i + 1] == '"' || text[i + 1] == '\\' || text[i + 1] == '{' ||
                    text[i + 1] == '}')) {
          add_literal(text[++i]);
        } else {
          add_literal(c);
        }
        break;
      case Quote::kNone:
        if (IsSpace(c)) {
          finish_word();
        } else if (c == '\'' || c == '"') {
          quote = c == '\'' ? Quote::kSingle : Quote::kDouble;
          quote_start = i;
          started = true;  // '' is an empty word, as in sh
        } else if (c == '\\') {
          if (i + 1 >= text.size()) {
            return absl::InvalidArgumentError(
                "command template: backslash at the end with nothing to escape");
          }
          ++i;
          if (text[i] != '\n') add_literal(text[i]);  // backslash-newline joins lines
        } else {
          add_literal(c);
        }
        break;
    }
  }
  if (quote != Quote::kNone) {
    return absl::InvalidArgumentError(
        absl::StrCat("command template: unterminated ", quote == Quote::kSingle ? "'" : "\"",
                     " quote starting at position ", quote_start + 1));
  }
  finish_word();
  if (words.empty()) {
    return absl::InvalidArgumentError("command template is empty");
  }
  if (words.front().empty()) {
    return absl::InvalidArgumentError("command template: the program name is empty");
  }
  return CommandTemplate(std::move(words), std::move(parsed));
}

absl::StatusOr<std::vector<std::string>> CommandTemplate::Expand(
    const PhaseIdentity& identity) const {
  std::vector<std::string> argv;
  argv.reserve(parsed_.size());
  for (const Word& word : parsed_) {
    std::string out;
    for (const Piece& piece : word) {
      if (!piece.placeholder) {
        out += piece.text;
        continue;
      }
      // Each value is validated where it is used, so an identifier the
      // template does not mention cannot fail the expansion.
      std::string_view value;
      std::string attempt;
      if (piece.text == "attempt") {
        if (identity.attempt < 1) {
          return absl::InvalidArgumentError(
              absl::StrCat("attempt is ", identity.attempt, " (must be >= 1)"));
        }
        attempt = std::to_string(identity.attempt);
        value = attempt;
      } else {
        if (piece.text == "run_id") {
          value = identity.run_id;
        } else if (piece.text == "phase_id") {
          value = identity.phase_id;
        } else if (piece.text == "lease_id") {
          value = identity.lease_id;
        } else {
          value = identity.session_id;
        }
        if (absl::Status status = ValidateId(piece.text, value); !status.ok()) return status;
      }
      out += value;
    }
    argv.push_back(std::move(out));
  }
  return argv;
}

}  // namespace sluice

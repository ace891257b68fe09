// The worker's own command template, e.g.
//   python3 scripts/drain_one_phase.py --run-id {run_id} --phase-id {phase_id} --force
// It is split into argv words once, at start-up, without a shell: quoting with
// '...' and "..." and backslash escapes are honoured, nothing else ($, `, ;, |,
// globs) has any meaning. Placeholders {run_id} {phase_id} {attempt}
// {lease_id} {session_id} are filled per phase, and only from identifiers
// that pass ValidateId, so a value can never add, split or alter a word.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace sluice {

class CommandTemplate {
 public:
  // InvalidArgument for an empty template, an unterminated quote, an unknown
  // placeholder or an unmatched brace. Placeholders are recognised inside
  // quotes too; \{ and \} are literal braces.
  static absl::StatusOr<CommandTemplate> Parse(std::string_view text);

  // argv for one phase; InvalidArgument when an identifier is not valid.
  absl::StatusOr<std::vector<std::string>> Expand(const PhaseIdentity& identity) const;

  const std::vector<std::string>& words() const { return words_; }

 private:
  // A run of literal text, or a placeholder (its name, without braces).
  struct Piece {
    bool placeholder = false;
    std::string text;
  };
  using Word = std::vector<Piece>;

  CommandTemplate(std::vector<std::string> words, std::vector<Word> parsed)
      : words_(std::move(words)), parsed_(std::move(parsed)) {}
  std::vector<std::string> words_;  // with placeholders still in them
  std::vector<Word> parsed_;        // words_ split into pieces; an escaped brace is literal here
};

}  // namespace sluice

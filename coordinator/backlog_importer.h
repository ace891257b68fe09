// Parses a backlog file into PhaseSpecs. Pure: no store access.
//
// Formats: JSONL (one JSON object per line; chosen for *.jsonl/*.json or when
// the first non-blank character is '{') or CSV with a header row (RFC 4180
// quoting). Required fields: run_id, phase_id (valid identifiers). Optional:
// phase_index (integer), priority (integer), last_error (string), labels
// (JSON array of identifiers, or in CSV a ';'-separated list). Every other
// field is kept, as JSON, in PhaseSpec::metadata_json.
//
// A file is accepted whole or rejected whole: the first problem is reported
// as InvalidArgument "FILE:LINE: reason". Rejected: invalid JSON, a missing or
// empty required field, a field of the wrong type, an identifier with a
// forbidden character, the same (run_id, phase_id) twice, a line longer than
// kMaxBacklogLineBytes, invalid UTF-8, and a file with no phases.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"

namespace sluice {

inline constexpr size_t kMaxBacklogLineBytes = 64 * 1024;

enum class BacklogFormat { kAuto, kJsonl, kCsv };

// Reads a backlog a chunk of phases at a time, so memory stays bounded by the
// chunk and the longest line, not by the file (the duplicate check keeps
// ~60 bytes per phase: see BacklogKeyIndex). Every check of ParseBacklog
// applies: the first problem is InvalidArgument "FILE:LINE: reason" and ends
// the reading, so a caller that writes chunks as they come must be able to
// undo them (StateStore::BeginImport). Not thread-safe.
class BacklogReader {
 public:
  // Reads the file at `path`; NotFound when it does not exist, InvalidArgument
  // when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<BacklogReader>> Open(
      const std::string& path, BacklogFormat format = BacklogFormat::kAuto);
  // Reads `content`, which must outlive the reader; `name` is for messages.
  static std::unique_ptr<BacklogReader> FromString(std::string_view name, std::string_view content,
                                                   BacklogFormat format = BacklogFormat::kAuto);
  ~BacklogReader();

  // Replaces *chunk with the next phases, at most `max_phases` (> 0). An empty
  // chunk means the file is done. A file without phases is an error at its end.
  absl::Status Next(size_t max_phases, std::vector<PhaseSpec>* chunk);

 private:
  class Impl;
  explicit BacklogReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `name` is used in error messages only (usually the path).
absl::StatusOr<std::vector<PhaseSpec>> ParseBacklog(std::string_view name, std::string_view content,
                                                    BacklogFormat format = BacklogFormat::kAuto);

// Reads `path` and parses it; a missing or unreadable file is NotFound/InvalidArgument.
absl::StatusOr<std::vector<PhaseSpec>> ReadBacklogFile(const std::string& path,
                                                       BacklogFormat format = BacklogFormat::kAuto);

}  // namespace sluice

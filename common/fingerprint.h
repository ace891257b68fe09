// Failure fingerprints: the same failure always gets the same fingerprint,
// different failures get different ones. Pure and thread-safe.
//
// Format of `key`: "OUTCOME|exit-class|normalised text (first 200 chars)",
// e.g. "failed|exit:1|importerror while importing test module <path>".
// `id` is a short stable hash of `key` (12 lowercase hex digits) for display.
#pragma once

#include <string>
#include <string_view>

#include "common/model.h"

namespace sluice {

struct Fingerprint {
  std::string key;
  std::string id;
};

// Masks volatile parts of an error text (dates, times, paths, hex addresses,
// line/column numbers, ports, UUIDs, request/trace ids, durations, numbers),
// lower-cases it and collapses white space. Words joined by a slash
// ("collection/import") are kept.
std::string NormalizeErrorText(std::string_view text);

// "exit:N", "signal:N", "timeout", "lost", "cancelled", "start_failed" or "ok".
std::string ExitClass(Outcome outcome, int exit_code, int signal);

Fingerprint ComputeFingerprint(Outcome outcome, int exit_code, int signal,
                               std::string_view error_text);

// 12 lowercase hex digits of a stable 64-bit FNV-1a hash of `key`.
std::string FingerprintId(std::string_view key);

}  // namespace sluice

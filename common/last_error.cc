#include "common/last_error.h"

#include "re2/re2.h"

namespace sluice {

bool LastErrorIsPhaseTimeout(std::string_view last_error) {
  // A duration right after "timed out after" is what a controller's (or
  // subprocess's) kill at a time limit prints; network libraries say "timed
  // out" without one. Case-insensitive, anywhere in the text.
  static const RE2* const kPhaseTimeout = new RE2(
      R"((?i)(\btimed\s*out\s+after\s+\d+(\.\d+)?\s*(s|sec|secs|seconds?|m|mins?|minutes?|h|hours?)\b)"
      R"(|\bTimeoutExpired\b)"
      R"(|\bphase\s+(timed\s*out|timeout\b|exceeded))"
      R"(|\bexceeded\s+(its\s+|the\s+)?(phase\s+)?(timeout|time\s*limit)\b))");
  return RE2::PartialMatch(last_error, *kPhaseTimeout);
}

}  // namespace sluice

// Identifier validation shared by every entry point (backlog import, RPC
// handlers, command-template expansion). An identifier is 1..128 characters
// from [A-Za-z0-9._:-], does not start with '-' and is never "." or "..", so
// it is safe as an argv word (never read as an option), an environment value
// and a single path component.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace sluice {

inline constexpr size_t kMaxIdLength = 128;

// True when `value` is a well-formed identifier.
bool IsValidId(std::string_view value);

// OK, or InvalidArgument naming `field` and what is wrong with `value`.
absl::Status ValidateId(std::string_view field, std::string_view value);

}  // namespace sluice

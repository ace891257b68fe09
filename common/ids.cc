#include "common/ids.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

}  // namespace

bool IsValidId(std::string_view value) { return ValidateId("id", value).ok(); }

absl::Status ValidateId(std::string_view field_view, std::string_view value) {
  // Debian's abseil does not alias absl::string_view to std::string_view.
  const std::string field(field_view);
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  }
  if (value.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " characters long (at most ", kMaxIdLength, ")"));
  }
  if (value == "." || value == "..") {
    return absl::InvalidArgumentError(absl::StrCat(field, " must not be \".\" or \"..\""));
  }
  // An id is substituted into the worker's own argv: "-rf" or "--config=x"
  // as a positional word would be read as an option by the phase's program.
  if (value.front() == '-') {
    return absl::InvalidArgumentError(absl::StrCat(field, " must not start with '-'"));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (!IsIdChar(value[i])) {
      const unsigned char c = static_cast<unsigned char>(value[i]);
      std::string shown = (c >= 0x20 && c < 0x7f)
                              ? std::string(1, value[i])
                              : absl::StrCat("\\x", absl::Hex(c, absl::kZeroPad2));
      return absl::InvalidArgumentError(absl::StrCat(field, " has forbidden character '", shown,
                                                     "' at position ", i + 1,
                                                     " (allowed: A-Z a-z 0-9 . _ : -)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace sluice

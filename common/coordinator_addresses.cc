#include "common/coordinator_addresses.h"

#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sluice {

absl::StatusOr<std::vector<std::string>> ParseCoordinatorAddresses(const std::string& list) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    const std::string address(absl::StripAsciiWhitespace(part));
    const size_t colon = address.rfind(':');
    if (address.empty() || colon == std::string::npos || colon == 0 ||
        colon + 1 == address.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--coordinator ", list, ": expected HOST:PORT or a comma-separated list of them"));
    }
    out.push_back(address);
  }
  return out;
}

std::string LeaderAddressHint(const absl::Status& status) {
  static constexpr std::string_view kKey = "leader_address=";
  const std::string message(status.message());
  const size_t at = message.find(kKey);
  if (at == std::string::npos) return "";
  const size_t begin = at + kKey.size();
  const size_t end = message.find_first_of(" ;,)", begin);
  return message.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

}  // namespace sluice

// Encodings shared by the state stores (SQLite and Redis keep the same text
// forms, so a store's data reads the same whichever backend wrote it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/model.h"

namespace sluice {

// Sorted, de-duplicated, comma-joined.
std::string JoinLabels(const std::vector<std::string>& labels);
std::vector<std::string> SplitLabels(const std::string& joined);

std::string TypesToJson(const std::map<std::string, int64_t>& by_type);
std::map<std::string, int64_t> TypesFromJson(const std::string& text);

// Missing keys take SessionSettings' defaults, so older rows stay readable.
std::string SettingsToJson(const SessionSettings& settings);
SessionSettings SettingsFromJson(const std::string& text);

}  // namespace sluice

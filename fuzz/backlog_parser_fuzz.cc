// libFuzzer target: ParseBacklog on arbitrary bytes, in every format.
// Properties: it never crashes; an accepted file has at least one phase, each
// with valid identifiers and labels, metadata that is valid JSON, and no
// (run_id, phase_id) twice; a rejected file's
// message starts with the file name (FILE:LINE: reason or FILE: reason).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "common/ids.h"
#include "coordinator/backlog_importer.h"
#include "nlohmann/json.hpp"

namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    __builtin_printf("property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the format; the rest is the file.
  const sluice::BacklogFormat formats[] = {
      sluice::BacklogFormat::kAuto, sluice::BacklogFormat::kJsonl, sluice::BacklogFormat::kCsv};
  const sluice::BacklogFormat format = formats[data[0] % 3];
  const std::string_view content(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr std::string_view kName = "fuzz-backlog";
  auto phases = sluice::ParseBacklog(kName, content, format);
  if (!phases.ok()) {
    const std::string message(phases.status().message());
    Check(message.rfind(std::string(kName), 0) == 0, "error message starts with the file name");
    return 0;
  }
  Check(!phases->empty(), "an accepted backlog has phases");
  std::set<std::pair<std::string, std::string>> seen;
  for (const sluice::PhaseSpec& p : *phases) {
    Check(sluice::IsValidId(p.run_id), "run_id is valid");
    Check(sluice::IsValidId(p.phase_id), "phase_id is valid");
    for (const std::string& label : p.labels) Check(sluice::IsValidId(label), "label is valid");
    Check(seen.emplace(p.run_id, p.phase_id).second, "no duplicate phase");
    Check(nlohmann::json::accept(p.metadata_json), "metadata is valid JSON");
  }
  return 0;
}

#include "coordinator/policy/leasing_pause.h"

#include "nlohmann/json.hpp"

namespace sluice {

std::string LeasingPauseToJson(const LeasingPause& pause) {
  return nlohmann::json{{"paused", pause.paused},
                        {"reason", pause.reason},
                        {"paused_at_ms", pause.paused_at_ms},
                        {"resumed_at_ms", pause.resumed_at_ms}}
      .dump();
}

std::optional<LeasingPause> LeasingPauseFromJson(const std::string& session_id,
                                                 const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("paused") || !j["paused"].is_boolean()) return std::nullopt;
  LeasingPause p;
  p.session_id = session_id;
  p.paused = j["paused"].get<bool>();
  p.reason = j.value("reason", std::string());
  p.paused_at_ms = j.value("paused_at_ms", int64_t{0});
  p.resumed_at_ms = j.value("resumed_at_ms", int64_t{0});
  return p;
}

}  // namespace sluice

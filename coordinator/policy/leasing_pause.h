// A pause of leasing for one session: while paused the coordinator grants no
// leases (running phases finish). Set when the telemetry-loss alarm fires in
// a session with --on-telemetry-loss pause; ended by an operator
// (`sluice resume`). Kept in the store as a policy record (kind
// kLeasingPauseRecord, key = session id) so a coordinator restart does not
// silently resume.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sluice {

inline constexpr const char* kLeasingPauseRecord = "leasing_pause";

struct LeasingPause {
  std::string session_id;
  bool paused = false;
  std::string reason;  // "telemetry loss: ..."
  int64_t paused_at_ms = 0;
  // The alarm judges only attempts that ended after the last resume, so a
  // resume is not undone at once by the history that fired the alarm.
  int64_t resumed_at_ms = 0;
};

std::string LeasingPauseToJson(const LeasingPause& pause);
// nullopt for a record that is not a pause (corrupt or from a newer version).
std::optional<LeasingPause> LeasingPauseFromJson(const std::string& session_id,
                                                 const std::string& text);

}  // namespace sluice

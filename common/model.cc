#include "common/model.h"

#include <array>
#include <optional>
#include <string_view>
#include <utility>

namespace sluice {
namespace {

// Every enumerator with its wire/storage name. The parse functions search
// these tables, so a name and its parse can never disagree.
constexpr std::array<std::pair<Outcome, std::string_view>, 7> kOutcomeNames = {{
    {Outcome::kSucceeded, "succeeded"},
    {Outcome::kFailed, "failed"},
    {Outcome::kTimedOut, "timed_out"},
    {Outcome::kKilled, "killed"},
    {Outcome::kCancelled, "cancelled"},
    {Outcome::kLost, "lost"},
    {Outcome::kStartFailed, "start_failed"},
}};

constexpr std::array<std::pair<PhaseState, std::string_view>, 4> kPhaseStateNames = {{
    {PhaseState::kPending, "pending"},
    {PhaseState::kLeased, "leased"},
    {PhaseState::kSucceeded, "succeeded"},
    {PhaseState::kFailed, "failed"},
}};

constexpr std::array<std::pair<ReportDisposition, std::string_view>, 4> kDispositionNames = {{
    {ReportDisposition::kAccepted, "accepted"},
    {ReportDisposition::kDuplicate, "duplicate"},
    {ReportDisposition::kLate, "late"},
    {ReportDisposition::kUnknownLease, "unknown_lease"},
}};

constexpr std::array<std::pair<SessionState, std::string_view>, 3> kSessionStateNames = {{
    {SessionState::kActive, "active"},
    {SessionState::kStopped, "stopped"},
    {SessionState::kFinished, "finished"},
}};

constexpr std::array<std::pair<TelemetryLossAction, std::string_view>, 2>
    kTelemetryLossActionNames = {{
        {TelemetryLossAction::kWarn, "warn"},
        {TelemetryLossAction::kPause, "pause"},
    }};

template <typename Enum, size_t N>
std::string_view NameOf(const std::array<std::pair<Enum, std::string_view>, N>& table, Enum value) {
  for (const auto& [e, name] : table) {
    if (e == value) return name;
  }
  return "unknown";  // only reachable through a cast of an out-of-range integer
}

template <typename Enum, size_t N>
std::optional<Enum> Parse(const std::array<std::pair<Enum, std::string_view>, N>& table,
                          std::string_view name) {
  for (const auto& [e, n] : table) {
    if (n == name) return e;
  }
  return std::nullopt;
}

}  // namespace

std::string_view OutcomeName(Outcome outcome) { return NameOf(kOutcomeNames, outcome); }
std::optional<Outcome> ParseOutcome(std::string_view name) { return Parse(kOutcomeNames, name); }

bool CountsTowardSessionProgress(Outcome outcome) {
  return outcome != Outcome::kLost && outcome != Outcome::kCancelled &&
         outcome != Outcome::kStartFailed;
}

std::string_view PhaseStateName(PhaseState state) { return NameOf(kPhaseStateNames, state); }
std::optional<PhaseState> ParsePhaseState(std::string_view name) {
  return Parse(kPhaseStateNames, name);
}

std::string_view ReportDispositionName(ReportDisposition d) { return NameOf(kDispositionNames, d); }

std::string_view SessionStateName(SessionState s) { return NameOf(kSessionStateNames, s); }
std::optional<SessionState> ParseSessionState(std::string_view name) {
  return Parse(kSessionStateNames, name);
}

std::string_view TelemetryLossActionName(TelemetryLossAction a) {
  return NameOf(kTelemetryLossActionNames, a);
}
std::optional<TelemetryLossAction> ParseTelemetryLossAction(std::string_view name) {
  return Parse(kTelemetryLossActionNames, name);
}

}  // namespace sluice

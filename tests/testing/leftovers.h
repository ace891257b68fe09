// Finding what a phase left behind, for the containment tests (#16 item 3).
// Thread-safe: keeps no state.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace sluice::testing {

// The live (not zombie) processes whose initial environment holds exactly
// the entry `name_value` ("NAME=VALUE"): a per-attempt marker finds whatever
// a phase left behind, wherever it moved (group, session, parent). Needs
// permission to read /proc/PID/environ (same user, or root).
std::vector<pid_t> ProcessesWithEnv(const std::string& name_value);

}  // namespace sluice::testing

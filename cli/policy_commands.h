// `sluice fingerprints`, `sluice unblock`, `sluice plan` / `drain --dry-run`:
// the drain policy's memory and decisions, for operators.
#pragma once

#include <string>

#include "cli/operator_api.h"

namespace sluice {

int CmdFingerprints(OperatorApi& api, bool json);
int CmdUnblock(OperatorApi& api, const std::string& fingerprint, bool json);
// Prints the lease order and the excluded runs with their reasons.
void PrintPlan(const LeasePlan& plan, bool json);

}  // namespace sluice

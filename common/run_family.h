// Run families: runs that differ only by a trailing version, date or letter
// ("research-system-v1", "research-system-v2" -> "research-system";
// "build-2024-01-05" -> "build"; "run-a", "run-b" -> "run"). Reports and
// `sluice recommend` aggregate by family so a failure that hits every
// version of one system shows up once. Pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

// The run id with its trailing variant tokens removed. Tokens are separated
// by '-', '_', '.' or ':'; a trailing token is a variant when it is a number
// ("3", "20240105"), a version ("v2", "V10", "rc1"), or a single letter
// ("a"). Variant tokens are removed from the end repeatedly, but the first
// token always stays, so the family is never empty ("v1" -> "v1"). The
// result keeps the run id's spelling (no case folding).
std::string RunFamily(std::string_view run_id);

}  // namespace sluice

// `sluice recommend` and `sluice watch`: registered on the CLI app by one
// call and run by another, so cli/main.cc only hooks them in.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/watch.h"
#include "client/channel.h"
#include "coordinator/insight/recommend.h"

namespace sluice {

struct InsightCommands {
  CLI::App* recommend = nullptr;
  std::string recommend_store;
  bool recommend_json = false;
  std::string recommend_family_pattern;  // compiled into recommend_options.family_rule
  RecommendOptions recommend_options;

  CLI::App* watch = nullptr;
  std::string watch_store;
  ChannelOptions watch_channel;  // watch_channel.address: --coordinator
  WatchOptions watch_options;
};

// --family-pattern on `cmd` into *pattern: one help text for every command
// that groups runs into families (drain, status, plan, report, recommend).
// Checked by the caller (RunFamilyRule::Compile, CoordinatorConfig::
// Validate): a bad pattern is a usage error.
void AddFamilyPatternFlag(CLI::App* cmd, std::string* pattern);

// Adds the subcommands to `app`; the returned object receives their flags
// and must live until RunInsightCommands.
std::unique_ptr<InsightCommands> AddInsightCommands(CLI::App& app);

// The exit code when one of these subcommands was given, else nullopt.
std::optional<int> RunInsightCommands(const InsightCommands& commands);

}  // namespace sluice

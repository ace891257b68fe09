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
  RecommendOptions recommend_options;

  CLI::App* watch = nullptr;
  std::string watch_store;
  ChannelOptions watch_channel;  // watch_channel.address: --coordinator
  WatchOptions watch_options;
};

// Adds the subcommands to `app`; the returned object receives their flags
// and must live until RunInsightCommands.
std::unique_ptr<InsightCommands> AddInsightCommands(CLI::App& app);

// The exit code when one of these subcommands was given, else nullopt.
std::optional<int> RunInsightCommands(const InsightCommands& commands);

}  // namespace sluice

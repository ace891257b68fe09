#include "cli/insight_commands.h"

#include <iostream>
#include <memory>
#include <utility>

#include "cli/operator_api.h"
#include "coordinator/store/store_factory.h"

namespace sluice {

void AddFamilyPatternFlag(CLI::App* cmd, std::string* pattern) {
  cmd->add_option("--family-pattern", *pattern,
                  "RE2 pattern whose first capture group is a run's family for the "
                  "scheduler's priors, the report's family table and recommend's family advice "
                  "(a run id it does not match is its own family); default: strip a trailing "
                  "date, letter or version");
}

std::unique_ptr<InsightCommands> AddInsightCommands(CLI::App& app) {
  auto c = std::make_unique<InsightCommands>();
  c->recommend_store = kDefaultStoreUrl;
  c->watch_store = kDefaultStoreUrl;

  RecommendOptions& o = c->recommend_options;
  c->recommend = app.add_subcommand(
      "recommend",
      "Recommend drain settings from the evidence in the store (durations, outcomes, "
      "fingerprints, retries, yields), each with its justification, ending with a complete "
      "`sluice drain` command line; with too little evidence, a diagnostic batch");
  c->recommend
      ->add_option("--store", c->recommend_store,
                   "State store URL read directly (sqlite://PATH); recommend does not go "
                   "through a coordinator")
      ->capture_default_str();
  c->recommend
      ->add_option("--target-phases", o.target_phases,
                   "Phases the next drain should finish (0 = every pending phase)")
      ->capture_default_str();
  c->recommend->add_option("--workers", o.workers, "Worker processes the drain will have")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->recommend->add_option("--slots", o.slots, "Phases each worker runs at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->recommend->add_option("--backlog", o.backlog_path, "Backlog file for the command line")
      ->capture_default_str();
  c->recommend->add_option("--exec", o.exec, "Phase command template for the command line")
      ->capture_default_str();
  c->recommend->add_option("--env", o.env, "K=V for the command line (repeatable)");
  c->recommend
      ->add_option("--timeout-margin", o.timeout_margin,
                   "Phase timeout = p95 of successful durations x this")
      ->check(CLI::Range(1.0, 10.0))
      ->capture_default_str();
  AddFamilyPatternFlag(c->recommend, &c->recommend_family_pattern);
  c->recommend->add_flag("--json", c->recommend_json, "Print JSON");

  c->watch = app.add_subcommand(
      "watch",
      "Live view of the drain, refreshed every second: progress, phases by state, rates, ETA, "
      "yield, workers, top fingerprints. q or Ctrl-C quits");
  c->watch->add_option("--store", c->watch_store, "State store URL used directly (sqlite://PATH)")
      ->capture_default_str();
  c->watch->add_option("--coordinator", c->watch_channel.address,
                       "Watch a running coordinator at HOST:PORT instead of the store; a "
                       "comma-separated list follows the leader");
  AddChannelFlags(c->watch, &c->watch_channel);
  c->watch->add_flag("--once", c->watch_options.once, "Draw one frame and exit");
  c->watch->add_option("--interval-ms", c->watch_options.interval_ms, "Refresh period")
      ->check(CLI::Range(100, 3'600'000))
      ->capture_default_str();
  return c;
}

std::optional<int> RunInsightCommands(const InsightCommands& c) {
  if (c.recommend != nullptr && *c.recommend) {
    // Before the store opens: a bad pattern never creates one.
    auto rule = RunFamilyRule::Compile(c.recommend_family_pattern);
    if (!rule.ok()) {
      std::cerr << "sluice recommend: " << rule.status().message() << "\n";
      return 2;
    }
    RecommendOptions options = c.recommend_options;
    options.family_rule = *std::move(rule);
    auto store = OpenStateStore(c.recommend_store);
    if (!store.ok()) {
      std::cerr << "sluice recommend: " << store.status().message() << "\n";
      return store.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 3;
    }
    auto rec = RecommendFromStore(**store, options);
    if (!rec.ok()) {
      std::cerr << "sluice recommend: " << rec.status().message() << "\n";
      return 3;
    }
    std::cout << (c.recommend_json ? RecommendationJson(*rec) + "\n" : RecommendationText(*rec));
    return 0;
  }
  if (c.watch != nullptr && *c.watch) {
    auto api = c.watch_channel.address.empty() ? OpenDirectOperator(c.watch_store)
                                               : ConnectOperator(c.watch_channel);
    if (!api.ok()) {
      std::cerr << "sluice watch: " << api.status().message() << "\n";
      return api.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 3;
    }
    return RunWatch(**api, c.watch_options);
  }
  return std::nullopt;
}

}  // namespace sluice

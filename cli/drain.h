// `sluice drain`: everything on one box. Imports the backlog into the
// embedded store, starts a coordinator on loopback and N sluice-worker
// processes that talk to it over real gRPC, drains, prints the session
// summary. Ctrl-C (or SIGTERM) stops leasing, cancels running phases
// gracefully and keeps all state; running the same command again resumes.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/model.h"

namespace sluice {

struct DrainOptions {
  std::string backlog_path;
  std::string store_url = "sqlite://.sluice/state.db";
  std::string listen_address = "127.0.0.1:0";
  int32_t workers = 2;
  int32_t slots = 1;
  std::string exec;
  std::vector<std::string> env;  // K=V
  std::string workdir;
  std::string log_dir;  // default: <store dir>/logs
  double grace_seconds = 10;
  int64_t lease_ttl_ms = 15'000;
  int64_t heartbeat_interval_ms = 3'000;
  std::string family_pattern;  // CoordinatorConfig::family_pattern
  SessionSettings settings;
  bool json = false;
  bool dry_run = false;  // print the lease plan for this backlog on a snapshot; change nothing
  std::string log_format = "human";
  std::string log_level = "warn";
  std::string worker_binary;   // default: sluice-worker next to this executable
  std::string metrics_listen;  // --http-listen HOST:PORT: web view, /metrics; off when empty
};

// Exit codes: 0 every phase of the backlog has succeeded; 1 some have not;
// 2 usage or configuration error (bad backlog, bad flags); 3 infrastructure
// error (store, port, workers); 130 interrupted (state kept; rerun resumes).
int RunDrain(const DrainOptions& options);

}  // namespace sluice

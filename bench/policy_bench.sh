#!/usr/bin/env bash
# Builds and runs bench/policy_bench: sluice's drain policy (the real
# Coordinator over a real SQLite store, simulated workers, simulated clock)
# against FIFO and the reference's policy on a synthetic backlog of about 270
# phases in 55 runs, over several seeds. Prints, per policy, telemetry events
# per worker-minute, worker-minutes until 90 % of the attainable events, and
# minutes spent repeating already-known deterministic failures, with the
# ratios to the reference. Deterministic: the same seeds print the same table.
#
#   bench/policy_bench.sh                      # seeds 1..10, 4 workers
#   bench/policy_bench.sh --seeds=3 --verbose  # per-seed detail
#   BUILD_DIR=build bench/policy_bench.sh      # reuse an existing build dir
#
# Arguments go to policy_bench (--seed=N --seeds=N --workers=K --phases=N
# --runs=N --verbose). JOBS=N sets build jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B "$BUILD_DIR" -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target policy_bench
if [[ $# -eq 0 ]]; then set -- --seeds=10; fi
exec "$BUILD_DIR/bench/policy_bench" "$@"

#!/usr/bin/env bash
# Set-up and main job in one: installs what is missing, builds, and drains the
# example backlog (examples/backlog.jsonl: 60 phases in 11 runs) with 4 local
# workers talking gRPC to a coordinator on the embedded SQLite store.
# State goes to demo/.sluice; run it again to see a resumed (already drained) store,
# or delete demo/ to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# Only what the drain runs: the test suite is scripts/test.sh's job.
SLUICE_TARGETS="sluice sluice-coordinator sluice-worker sluice-example-phase" scripts/build.sh
mkdir -p demo
BIN=$PWD/build/bin
cd demo
set +e
"$BIN/sluice" drain ../examples/backlog.jsonl \
  --workers 4 --slots 2 \
  --exec "$BIN/sluice-example-phase --run-id {run_id} --phase-id {phase_id}" \
  --env TELEMETRY_DB_ENABLED=1 \
  --phase-timeout-seconds 5 --grace-seconds 1 "$@"
rc=$?
set -e
echo "sluice drain exited $rc (0: every phase succeeded, 1: some failed - the example has deterministic failures)"
[ "$rc" -le 1 ]

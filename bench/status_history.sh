#!/usr/bin/env bash
# What `sluice status` costs a coordinator that starts on a long history
# with a failed run (any real drain has one): a store (SQLite, or Redis with
# STORE=redis: a redis-server of its own) of PHASES phases
# (RUNS runs) with ATTEMPTS attempts of history (bench/gen_history.py: 10 %
# failed) and one phase failed for good, a coordinator started on it, then
# `sluice status --coordinator` STATUSES times. Prints the time from the
# coordinator's start until its first status answers (its history replay
# included), each later status, the coordinator's peak RSS, and the time and
# memory of `sluice status --store` (one process, no coordinator).
#
#   bench/status_history.sh [ATTEMPTS] [PHASES] [RUNS] [STATUSES]
#   (defaults 1000000, 100000, 1000, 5)
#   STORE: sqlite (default) or redis; SLUICE_BIN_DIR: the binaries (default build-bench/bin)
# It is a benchmark, not a test: it asserts nothing.
set -euo pipefail
ATTEMPTS=${1:-1000000} PHASES=${2:-100000} RUNS=${3:-1000} STATUSES=${4:-5}
STORE=${STORE:-sqlite}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SLUICE_BIN_DIR:-$ROOT/build-bench/bin}
. "$(dirname "$0")/lib.sh" # bench_scratch, start_grpc_coordinator, ...
bench_scratch status-history
python3 "$ROOT/bench/gen_backlog.py" "$PHASES" "$RUNS" >"$TMP/backlog.jsonl"
# One phase failed for good, its run's counters moved with it: status then
# explains the failed run, which reads the spent attempts. (Its attempts are
# the history's; the first phase of the first run, as gen_backlog.py names it.)
run=run-00000 phase=phase-0000000
if [ "$STORE" = redis ]; then
  start_redis "$TMP/redis"
  url="redis://127.0.0.1:$REDIS_PORT/0?namespace=h"
  "$BIN/sluice" import "$TMP/backlog.jsonl" --store "$url" >/dev/null
  python3 "$ROOT/bench/gen_history.py" redis h "$ATTEMPTS" "$PHASES" "$RUNS" |
    redis-cli -p "$REDIS_PORT" --pipe >/dev/null
  redis-cli -p "$REDIS_PORT" HSET "h:phase:${#run}:$run:$phase" state failed \
    final_outcome failed attempts 1 >/dev/null
  redis-cli -p "$REDIS_PORT" HINCRBY "h:run:$run" pending -1 >/dev/null
  redis-cli -p "$REDIS_PORT" HINCRBY "h:run:$run" failed 1 >/dev/null
else
  db=$TMP/state.db
  url="sqlite://$db"
  "$BIN/sluice" import "$TMP/backlog.jsonl" --store "$url" >/dev/null
  python3 "$ROOT/bench/gen_history.py" sqlite "$db" "$ATTEMPTS" "$PHASES" "$RUNS"
  python3 - "$db" "$run" "$phase" <<'PY'
import sqlite3, sys
db, run, phase = sqlite3.connect(sys.argv[1]), sys.argv[2], sys.argv[3]
db.execute("UPDATE phases SET state = 'failed', final_outcome = 'failed', attempts = 1 "
           "WHERE run_id = ? AND phase_id = ?", (run, phase))
db.execute("UPDATE runs SET pending = pending - 1, failed = failed + 1 WHERE run_id = ?", (run,))
db.commit()
PY
fi
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
t0=$(date +%s%N)
start_grpc_coordinator "$BIN" "$url" "$TMP/coord.log"
first=$(ms "$t0")
later=()
for _ in $(seq "$STATUSES"); do
  t=$(date +%s%N)
  "$BIN/sluice" status --coordinator "$ADDR" >"$TMP/status.txt"
  later+=("$(ms "$t")")
done
hwm=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$COORD_PID/status")
kill "$COORD_PID" && wait "$COORD_PID" 2>/dev/null || true
# The same from one process without a coordinator: it replays the history too.
read -r store_s store_kb < <(python3 - "$BIN/sluice" status --store "$url" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(round(time.monotonic() - t, 2), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
) || { echo "sluice status --store failed" >&2; exit 1; }
grep -q "failed for good" "$TMP/status.txt" || { echo "no failed-for-good row:" >&2; cat "$TMP/status.txt" >&2; exit 1; }
echo "status_history: $STORE, $ATTEMPTS attempts, $PHASES phases, $RUNS runs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  coordinator start until its first status answers: $first ms"
echo "  each later status (process start included): ${later[*]} ms"
echo "  coordinator peak RSS: $hwm MB"
echo "  sluice status --store: $store_s s, max RSS $((store_kb / 1024)) MB"

#!/usr/bin/env bash
# What the telemetry-loss alarm costs a coordinator whose active session has
# a long history: a SQLite store whose active session already has ATTEMPTS
# finished attempts (succeeded, with events, so the alarm finds nothing), a
# coordinator started on it, then BURSTS bursts of 50 lease+report cycles
# (`fleet_bench cycles`, 1 worker x 8 grants + ReportBatch), one a second:
# a drain's steady state, where every tick has new reports for the alarm to
# judge. Prints the coordinator's start-up time, its peak RSS (VmHWM) after
# start-up and at the end, and its CPU time over the bursts.
#
#   bench/alarm_history.sh [ATTEMPTS] [BURSTS]   (defaults 1000000, 60)
#   SLUICE_BIN_DIR, SLUICE_BENCH_DIR: the binaries (default build-bench/...)
# It is a benchmark, not a test: it asserts nothing.
set -euo pipefail
ATTEMPTS=${1:-1000000} BURSTS=${2:-60}
PHASES=$((BURSTS * 64)) # a burst takes 50-57 (8 grants a lease)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SLUICE_BIN_DIR:-$ROOT/build-bench/bin}
BENCH=${SLUICE_BENCH_DIR:-$ROOT/build-bench/bench}
. "$(dirname "$0")/lib.sh" # bench_scratch, backlog, cpu_ticks, start_grpc_coordinator, ...
bench_scratch alarm-history
backlog "$PHASES" "$TMP/backlog.jsonl"
mkdir "$TMP/store"
url="sqlite://$TMP/store/state.db"

start_grpc_coordinator "$BIN" "$url" "$TMP/coord.log"
load_one_attempt_session "$BIN" "$TMP/backlog.jsonl"
kill "$COORD_PID" && wait "$COORD_PID" 2>/dev/null || true
session=$(sqlite3 "$TMP/store/state.db" "SELECT session_id FROM sessions WHERE state='active'")
# The history: successes with 5 events each, ended an hour ago, of phases
# of a run not in the backlog (what a long session leaves behind).
sqlite3 "$TMP/store/state.db" <<SQL
WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < $ATTEMPTS)
INSERT INTO attempts(lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, outcome,
  exit_code, signal, duration_ms, error_text, fingerprint, telemetry_events, telemetry_by_type,
  stdout_tail, stderr_tail, started_at, ended_at)
SELECT 'H' || k, 'run-history', 'phase-' || (k % 1000), 1 + k / 1000, 1, 'w-history', '$session',
  'succeeded', 0, 0, 1000, '', '', 5, '{"event":5}', '', '', $(($(date +%s%3N) - 3600000)) - 1000,
  $(($(date +%s%3N) - 3600000))
FROM n;
UPDATE session_attempts SET finished = finished + $ATTEMPTS WHERE session_id = '$session';
SQL

t0=$(date +%s%N)
start_grpc_coordinator "$BIN" "$url" "$TMP/coord.log"
t1=$(date +%s%N)
hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$COORD_PID/status"; }
hwm_start=$(hwm)
c0=$(cpu_ticks "$COORD_PID")
# A drain's steady state: reports keep arriving, so every tick has news.
for _ in $(seq "$BURSTS"); do
  "$BENCH/fleet_bench" cycles "$ADDR" 1 50 8 batch >>"$TMP/fleet.log" || { cat "$TMP/fleet.log" "$TMP/coord.log" | tail -20; exit 1; }
  sleep 1
done
c1=$(cpu_ticks "$COORD_PID")
hwm_end=$(hwm)
kill "$COORD_PID" && wait "$COORD_PID" 2>/dev/null || true
echo "alarm_history: $ATTEMPTS attempts in the active session, $PHASES phases, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  coordinator start (until status answers): $(((t1 - t0) / 1000000)) ms"
echo "  coordinator peak RSS after start: $hwm_start MB, after the cycles: $hwm_end MB"
echo "  coordinator CPU over $BURSTS bursts of 50 cycles 1 s apart: $(python3 -c "print(round(($c1 - $c0) / $(getconf CLK_TCK), 2))") s"

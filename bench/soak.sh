#!/usr/bin/env bash
# Soak benchmark (not part of the test suite): a backlog of short phases
# generated on the fly is drained by several sluice-worker processes over gRPC
# while a killer loop SIGKILLs a random worker (and its phases' process
# groups: a machine that dies) every few seconds and starts it again with the
# same worker id and spool. At the end the store (`sluice report --json`,
# `sluice status --json`, and the SQLite file itself for per-attempt rows) is
# checked against the ledger that sluice-example-phase keeps:
#
#   lost phases        0  (every phase final; none failed as `lost`)
#   duplicated         0  (no (run, phase, attempt) recorded twice, no attempt
#                          number started twice, at most one success a phase)
#   attempts           every ledger start recorded; recorded without a start
#                      only as `lost` (a worker killed before it started)
#   events             counted once: every non-lost attempt carries exactly its
#                      ledger `end` events; the report's total equals their sum
#
# Prints the counts and the throughput; exits 1 when a check fails.
#
#   bench/soak.sh [--phases N] [--workers W] [--slots S] [--kill-every SEC]
#                 [--scale F] [--time-limit SEC] [--keep]
#
# Defaults: 2000 phases, 4 workers x 2 slots, a kill every 3 s, --scale 0.05
# (ok phases take 2.5-20 ms). Needs the binaries in $BIN_DIR (default
# build/bin: scripts/build.sh) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-build/bin}
PHASES=2000
WORKERS=4
SLOTS=2
KILL_EVERY=3
SCALE=0.05
TIME_LIMIT=600
KEEP=0
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --phases) PHASES=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --slots) SLOTS=$2; shift 2 ;;
    --kill-every) KILL_EVERY=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --time-limit) TIME_LIMIT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
for n in PHASES WORKERS SLOTS TIME_LIMIT; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: --$(tr "A-Z_" "a-z-" <<<"$n") must be a positive integer" >&2; exit 2; }
done
for n in KILL_EVERY SCALE; do
  [[ ${!n} =~ ^[0-9]+(\.[0-9]+)?$ && ${!n} != 0 ]] ||
    { echo "soak.sh: --$(tr "A-Z_" "a-z-" <<<"$n") must be a positive number" >&2; exit 2; }
done
for b in sluice sluice-coordinator sluice-worker sluice-example-phase; do
  [[ -x $BIN_DIR/$b ]] || { echo "soak.sh: $BIN_DIR/$b missing (run scripts/build.sh)" >&2; exit 2; }
done
BIN_DIR=$(cd "$BIN_DIR" && pwd)

DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-soak.XXXXXX")
DB="$DIR/state.db"
LEDGER="$DIR/ledger.txt"
declare -A WPID
COORD_PID=""
KILLER_PID=""
cleanup() {
  [[ -n $KILLER_PID ]] && kill "$KILLER_PID" 2>/dev/null || true
  for id in "${!WPID[@]}"; do kill -9 "${WPID[$id]}" 2>/dev/null || true; done
  # Workers the killer restarted (in its subshell), found by their --log-dir.
  for pid in $(pgrep -f -- "--log-dir $DIR/logs-" || true); do kill -9 "$pid" 2>/dev/null || true; done
  [[ -n $COORD_PID ]] && kill -9 "$COORD_PID" 2>/dev/null || true
  if [[ $KEEP == 1 ]]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

# The backlog: runs of 50 phases; 80 % ok (1-3 events), 10 % toolong (fails
# twice with 1 event each), 10 % flaky (fails once, then succeeds).
python3 - "$PHASES" > "$DIR/backlog.jsonl" <<'PY'
import json, sys
n = int(sys.argv[1])
for i in range(n):
    kind = "toolong" if i % 10 == 3 else "flaky" if i % 10 == 7 else "ok"
    print(json.dumps({"run_id": f"soak-r{i // 50:04d}", "phase_id": f"p{i:05d}-{kind}",
                      "phase_index": i % 50}))
PY

"$BIN_DIR/sluice-coordinator" --listen 127.0.0.1:0 --store "sqlite://$DB" --lease-ttl-ms 2000 \
  --heartbeat-interval-ms 400 --max-lease-wait-ms 1000 --log-level warn \
  >"$DIR/coordinator.out" 2>"$DIR/coordinator.err" &
COORD_PID=$!
for _ in $(seq 100); do
  PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$DIR/coordinator.out" | head -1)
  [[ -n $PORT ]] && break
  sleep 0.1
done
[[ -n ${PORT:-} ]] || { echo "coordinator did not start:"; cat "$DIR/coordinator.err"; exit 3; }
ADDR=127.0.0.1:$PORT
"$BIN_DIR/sluice" import "$DIR/backlog.jsonl" --coordinator "$ADDR" >/dev/null
# Repeat rule off and a generous requeue budget: every phase must end on its
# own outcome however often its worker is killed under it.
"$BIN_DIR/sluice" session start --coordinator "$ADDR" --phase-timeout-seconds 30 \
  --max-fingerprint-repeats 0 --max-requeues-per-phase 1000 >/dev/null

start_worker() {
  local id=$1
  "$BIN_DIR/sluice-worker" --coordinator "$ADDR" --worker-id "$id" --slots "$SLOTS" \
    --exec "$BIN_DIR/sluice-example-phase --run-id {run_id} --phase-id {phase_id} --scale $SCALE --ledger $LEDGER" \
    --env TELEMETRY_DB_ENABLED=1 --log-dir "$DIR/logs-$id" --grace-seconds 1 --drain-timeout 10 \
    --lease-wait-ms 1000 --log-level warn >>"$DIR/$id.out" 2>>"$DIR/$id.err" &
  WPID[$id]=$!
  disown "$!"  # no "Killed" job notices: the killer's kills are the point
}
for i in $(seq 1 "$WORKERS"); do start_worker "soak-w$i"; done

# The killer: SIGKILL a random worker and its phases' process groups, start
# it again at once (same id, same spool).
KILLS_FILE="$DIR/kills"
echo 0 >"$KILLS_FILE"
killer() {
  local kills=0
  while sleep "$KILL_EVERY"; do
    local id="soak-w$((RANDOM % WORKERS + 1))"
    local pid=${WPID[$id]}
    for child in $(pgrep -P "$pid" 2>/dev/null); do kill -9 -- "-$child" 2>/dev/null || true; done
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    start_worker "$id"
    kills=$((kills + 1))
    echo "$kills" >"$KILLS_FILE"
  done
}
STARTED=$(date +%s.%N)
killer &
KILLER_PID=$!

done_=0
while true; do
  sleep 1
  status=$("$BIN_DIR/sluice" status --json --coordinator "$ADDR" 2>/dev/null || true)
  if [[ -n $status ]] && python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]).get("session_done") else 1)' "$status"; then
    done_=1
    break
  fi
  if (( $(date +%s) - ${STARTED%.*} > TIME_LIMIT )); then break; fi
done
ELAPSED=$(python3 -c "import time; print(f'{time.time() - $STARTED:.1f}')")
kill "$KILLER_PID" 2>/dev/null || true
wait "$KILLER_PID" 2>/dev/null || true
KILLER_PID=""
KILLS=$(cat "$KILLS_FILE")
# The killer runs in a subshell: its restarted workers are found by their
# worker id on the command line.
for pid in $(pgrep -f -- "--log-dir $DIR/logs-" || true); do kill -TERM "$pid" 2>/dev/null || true; done
for _ in $(seq 150); do
  pgrep -f -- "--log-dir $DIR/logs-" >/dev/null || break
  sleep 0.1
done
WPID=()
"$BIN_DIR/sluice" report --json --coordinator "$ADDR" --latest >"$DIR/report.json"
"$BIN_DIR/sluice" status --json --coordinator "$ADDR" >"$DIR/status.json"
kill -TERM "$COORD_PID"
wait "$COORD_PID" || true
COORD_PID=""
if [[ $done_ != 1 ]]; then
  echo "soak: the drain did not finish within ${TIME_LIMIT}s" >&2
fi

python3 - "$DB" "$LEDGER" "$DIR/report.json" "$DIR/status.json" "$PHASES" "$ELAPSED" "$KILLS" \
  "$WORKERS" "$SLOTS" "$done_" <<'PY'
import collections, json, sqlite3, sys
db, ledger_path, report_path, status_path = sys.argv[1:5]
phases_n, elapsed, kills = int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
workers, slots, finished = int(sys.argv[8]), int(sys.argv[9]), sys.argv[10] == "1"
report = json.load(open(report_path))
status = json.load(open(status_path))
starts, ends = collections.Counter(), collections.defaultdict(int)
end_lines = collections.Counter()
for line in open(ledger_path):
    w = line.split()
    if w[0] == "start":
        starts[(w[1], w[2], int(w[3]))] += 1
    else:
        key = (w[1], w[2], int(w[3]))
        ends[key] += int(w[5])
        end_lines[key] += 1
con = sqlite3.connect(db)
attempts = con.execute("SELECT run_id, phase_id, attempt, outcome, telemetry_events FROM attempts").fetchall()
phases = con.execute("SELECT run_id, phase_id, state, final_outcome, telemetry_events FROM phases").fetchall()
recorded = collections.Counter((r, p, a) for r, p, a, _, _ in attempts)
problems = []
dup_recorded = sum(1 for n in recorded.values() if n > 1)
dup_started = sum(1 for n in starts.values() if n > 1)
successes = collections.Counter((r, p) for r, p, _, o, _ in attempts if o == "succeeded")
dup_success = sum(1 for n in successes.values() if n > 1)
not_final = [p for p in phases if p[2] not in ("succeeded", "failed")]
lost_final = [p for p in phases if p[2] == "failed" and p[3] == "lost"]
unrecorded = [k for k in starts if k not in recorded]
lost_attempts = sum(1 for a in attempts if a[3] == "lost")
no_start_not_lost = [a for a in attempts if (a[0], a[1], a[2]) not in starts and a[3] != "lost"]
wrong_events = [a for a in attempts if a[3] != "lost" and a[4] != ends.get((a[0], a[1], a[2]), 0)]
lost_with_events = [a for a in attempts if a[3] == "lost" and a[4] != 0]
events = sum(a[4] for a in attempts if a[3] != "lost")
phase_events = sum(p[4] for p in phases)
expected_ok = phases_n - sum(1 for p in phases if p[1].endswith("-toolong"))
succeeded = sum(1 for p in phases if p[2] == "succeeded")
checks = {
    "drain finished": finished,
    "phases in the store": len(phases) == phases_n,
    "lost phases 0 (not final, or failed as lost)": not not_final and not lost_final,
    "duplicated 0 (attempt recorded twice / started twice / two successes)":
        dup_recorded == 0 and dup_started == 0 and dup_success == 0,
    "every ledger start recorded": not unrecorded,
    "recorded without a start only as lost": not no_start_not_lost,
    "events counted once (per attempt)": not wrong_events and not lost_with_events,
    "events: report total = attempts' sum = phases' sum":
        report.get("telemetry_events") == events == phase_events,
    "attempts: report = store rows": report.get("attempts") == len(attempts),
    "succeeded = ok + flaky phases": succeeded == expected_ok,
    "status agrees": status["phases"].get("succeeded") == succeeded
        and status["phases"].get("pending", 0) + status["phases"].get("leased", 0) == 0,
}
print(f"soak: {phases_n} phases, {workers} workers x {slots} slots, {kills} worker SIGKILLs, "
      f"{elapsed:.1f} s")
print(f"  phases: succeeded {succeeded}, failed {len(phases) - succeeded - len(not_final)}, "
      f"not final {len(not_final)}, failed as lost {len(lost_final)}")
print(f"  attempts recorded {len(attempts)} (lost to kills/expiry {lost_attempts}), "
      f"ledger starts {sum(starts.values())}, ledger ends {sum(end_lines.values())}")
print(f"  duplicates: recorded {dup_recorded}, started {dup_started}, double successes {dup_success}")
print(f"  telemetry events: counted {events}, report {report.get('telemetry_events')}, "
      f"phases {phase_events}")
print(f"  throughput: {len(phases) / elapsed:.1f} phases/s, {len(attempts) / elapsed:.1f} attempts/s")
failed = [name for name, ok in checks.items() if not ok]
for name, ok in checks.items():
    print(f"  [{'ok' if ok else 'FAIL'}] {name}")
for a in (no_start_not_lost + wrong_events + lost_with_events)[:10]:
    print("  example:", a)
sys.exit(1 if failed else 0)
PY

#!/usr/bin/env bash
# Where a lease+report cycle's CPU goes: runs `fleet_bench cycles` (1 worker
# taking 8 grants per lease, reporting them in one ReportBatch) against a
# fresh sluice-coordinator on STORE, and prints the CPU time per cycle of the
# coordinator, of redis-server (Redis only) and of fleet_bench, read from
# /proc/PID/stat and getrusage around the run. CPU per cycle moves far less
# with the machine's load than the rate does, and the sum says how many
# cycles per second the machine's cores could give at most.
#
#   bench/cycle_cpu.sh sqlite|redis [PHASES] [ROUNDS]   (defaults 8000, 3)
#   SLUICE_BIN_DIR, SLUICE_BENCH_DIR: the binaries (default build-bench/...)
# It is a benchmark, not a test: it asserts nothing.
set -euo pipefail
if [[ $# -lt 1 || ($1 != sqlite && $1 != redis) ]]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
STORE=$1 PHASES=${2:-8000} ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SLUICE_BIN_DIR:-$ROOT/build-bench/bin}
BENCH=${SLUICE_BENCH_DIR:-$ROOT/build-bench/bench}
. "$(dirname "$0")/lib.sh"  # bench_scratch, backlog, cpu_ticks, start_redis, ...
bench_scratch cycle-cpu
backlog "$PHASES" "$TMP/backlog.jsonl"

REDIS_PID=
[[ $STORE == redis ]] && start_redis "$TMP/redis" --appendonly no

echo "cycle_cpu: $STORE, $PHASES phases, 1 worker x 8 grants + ReportBatch, $ROUNDS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  if [[ $STORE == redis ]]; then
    url="redis://127.0.0.1:$REDIS_PORT/0?namespace=r$round"
  else
    rm -rf "$TMP/store" && mkdir "$TMP/store"
    url="sqlite://$TMP/store/state.db"
  fi
  start_grpc_coordinator "$BIN" "$url" "$TMP/coord.log"
  load_one_attempt_session "$BIN" "$TMP/backlog.jsonl"
  c0=$(cpu_ticks "$COORD_PID")
  r0=0 r1=0
  [[ -n $REDIS_PID ]] && r0=$(cpu_ticks "$REDIS_PID")
  # fleet_bench's own CPU: bash's `times` of a subshell that only runs it.
  out=$( (
    "$BENCH/fleet_bench" cycles "$ADDR" 1 "$PHASES" 8 batch
    times
  ))
  c1=$(cpu_ticks "$COORD_PID")
  [[ -n $REDIS_PID ]] && r1=$(cpu_ticks "$REDIS_PID")
  kill "$COORD_PID" 2>/dev/null || true
  wait "$COORD_PID" 2>/dev/null || true
  python3 - "$PHASES" "$(getconf CLK_TCK)" "$((c1 - c0))" "$((r1 - r0))" "$out" <<'PY'
import re, sys
n, tck, coord, redis, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
lines = out.splitlines()
rate = float(lines[0].split()[2])
# `times` prints the shell's, then its children's user and system time: "0m0.26s 0m0.07s".
def secs(t):
    m, s = re.fullmatch(r"(\d+)m([\d.]+)s", t).groups()
    return int(m) * 60 + float(s)
child = sum(secs(t) for t in lines[-1].split())
us = lambda seconds: seconds * 1e6 / n
c, r, f = us(coord / tck), us(redis / tck), us(child)
parts = f"coordinator {c:.0f} us" + (f", redis-server {r:.0f} us" if redis else "") + f", fleet_bench {f:.0f} us"
print(f"  {rate:,.0f} cycles/s; CPU per cycle: {parts}; total {c + r + f:.0f} us"
      f" (at most {2e6 / (c + r + f):,.0f} cycles/s on 2 cores)")
PY
done

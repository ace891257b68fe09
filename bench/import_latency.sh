#!/usr/bin/env bash
# How long a Redis import blocks the server (issue #12, import row): imports a
# generated backlog with `sluice import --store redis://...` into a fresh
# redis-server (AOF everysec, as bench/scale.sh) while a prober sends PING
# every 10 ms on its own connection, and prints:
#   import_s        `sluice import` wall time
#   result          its "imported ..." line
#   evalsha         INFO commandstats for EVALSHA: calls, usec total, usec per call
#   slowest_ms      the longest EVALSHA (SLOWLOG, every command over 1 ms is logged)
#   ping_max_ms     the longest PING round trip seen by the prober (= longest stall
#                   a coordinator's lease, report or leader renewal would see)
#   ping_over_100ms PINGs that took over 100 ms (and the BUSY replies retried)
#   latency monitor Redis's LATENCY LATEST: worst stall per event over 20 ms
# It first probes for 5 s with no import: the prober's own noise at this load.
# Then re-imports the same file (every phase unchanged) and prints the same.
# A benchmark, not a test: figures vary with the machine and its load.
#
# Usage: bench/import_latency.sh [PHASES [RUNS]]   (default 1000000 10000)
# Env: SLUICE (the sluice binary, default build/bin/sluice), WORK (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
PHASES=${1:-1000000}
RUNS=${2:-10000}
SLUICE=${SLUICE:-$PWD/build/bin/sluice}
WORK=${WORK:-$(mktemp -d /tmp/sluice-import-latency.XXXXXX)}
rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"  # a fresh server every run
FILE=$WORK/backlog-$PHASES-$RUNS.jsonl
[ -s "$FILE" ] || python3 bench/gen_backlog.py "$PHASES" "$RUNS" >"$FILE"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
  --appendonly yes --appendfsync everysec --slowlog-log-slower-than 1000 \
  --slowlog-max-len 100000 --latency-monitor-threshold 20 --daemonize no >"$WORK/redis/log" 2>&1 &
REDIS_PID=$!
PROBE_PID=
cleanup() {
  [ -n "$PROBE_PID" ] && kill "$PROBE_PID" 2>/dev/null
  kill "$REDIS_PID" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# PING every 10 ms; a BUSY reply (a script over lua-time-limit) is retried
# at once, so a stall lasts until the PONG. On SIGTERM prints the longest
# stall, the stalls over 100 ms and the BUSY replies.
probe() {
  exec python3 - "$PORT" <<'PY'
import signal, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
worst, slow, busy, n = 0.0, 0, 0, 0
def done(*_):
    print("ping_max_ms=%.1f ping_over_100ms=%d busy_replies=%d pings=%d" %
          (worst * 1000, slow, busy, n), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    t0 = time.monotonic()
    while True:
        s.sendall(b"PING\r\n")
        buf = b""
        while not buf.endswith(b"\r\n"):
            buf += s.recv(256)
        if buf.startswith(b"+PONG"):
            break
        busy += 1
        time.sleep(0.001)
    dt = time.monotonic() - t0
    n += 1
    worst = max(worst, dt)
    slow += dt > 0.1
    time.sleep(0.01)
PY
}

run_once() {  # label
  redis-cli -p "$PORT" config resetstat >/dev/null
  redis-cli -p "$PORT" slowlog reset >/dev/null
  redis-cli -p "$PORT" latency reset >/dev/null
  probe >"$WORK/probe.out" &
  PROBE_PID=$!
  sleep 0.3
  local t0 t1
  t0=$(date +%s%N)
  "$SLUICE" import "$FILE" --store "redis://127.0.0.1:$PORT/0?namespace=bench" >"$WORK/import.out" 2>&1 ||
    echo "import failed: $(cat "$WORK/import.out")" >&2
  t1=$(date +%s%N)
  # A client that timed out leaves its script running: wait for the server.
  until [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ]; do sleep 0.2; done
  sleep 0.3
  kill "$PROBE_PID"; wait "$PROBE_PID" 2>/dev/null || true; PROBE_PID=
  local evalsha slowest
  evalsha=$(redis-cli -p "$PORT" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),usec=\([0-9]*\),usec_per_call=\([0-9.]*\).*/calls=\1 usec=\2 usec_per_call=\3/p')
  # SLOWLOG entries: id, time, duration (us), args...; the duration is the only
  # integer at position 3.
  slowest=$(redis-cli -p "$PORT" --no-raw slowlog get 100000 |
    awk '/^ *([0-9]+\) )?3\) \(integer\)/ { if ($NF > m) m = $NF } END { printf "%.1f", m / 1000 }')
  echo "$1: import_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e9}') $(tr -d '\n' <"$WORK/import.out")"
  echo "  evalsha: $evalsha slowest_ms=$slowest $(cat "$WORK/probe.out")"
  # Redis's own latency monitor: the worst stall per event over 20 ms
  # (command = a script, aof-* = writing its effects to the AOF).
  echo "  latency monitor max_ms: $(redis-cli -p "$PORT" latency latest | paste -sd' ' |
    awk '{ for (i = 1; i + 3 <= NF; i += 4) printf "%s=%s ", $i, $(i + 3) }')"
}

idle_probe() {  # the prober alone: its own noise on this machine at this load
  probe >"$WORK/probe.out" &
  PROBE_PID=$!
  sleep 5
  kill "$PROBE_PID"; wait "$PROBE_PID" 2>/dev/null || true; PROBE_PID=
  echo "idle (no import, 5 s): $(cat "$WORK/probe.out")"
}

echo "work dir: $WORK, $PHASES phases in $RUNS runs, $SLUICE"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
idle_probe
run_once "first import"
run_once "re-import"

# Shell helpers shared by the benchmark scripts; source it, do not run it.

# A backlog of $1 phases in runs of 10 (a run's phases go one at a time)
# written to file $2.
backlog() {
  python3 - "$1" "$2" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        f.write(json.dumps({"run_id": f"run-{i // 10:05d}", "phase_id": f"p{i:06d}",
                            "phase_index": i % 10}) + "\n")
PY
}

# A free TCP port on the loopback interface.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_web_coordinator COORD STORE_URL LOG: starts COORD on STORE_URL with
# gRPC and the web view on free loopback ports, logging to LOG, and waits up
# to 60 s for /healthz. Sets pid (the coordinator's) and base (the web view's
# URL); the caller stops it (kill "$pid").
start_web_coordinator() {
  local coord=$1 url=$2 log=$3 grpc http
  grpc=$(free_port) http=$(free_port)
  "$coord" --store "$url" --listen "127.0.0.1:$grpc" --http-listen "127.0.0.1:$http" \
    --log-level warn >"$log" 2>&1 &
  pid=$!
  base="http://127.0.0.1:$http"
  for _ in $(seq 600); do curl -sf "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}

# bench_scratch NAME: sets TMP to a new directory under $TMPDIR and PIDS to
# an empty list. On exit every pid added to PIDS is killed and waited for,
# and TMP is removed.
bench_scratch() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}

# CPU ticks (utime + stime) of process $1 so far (bash only: cheap and quick).
cpu_ticks() {
  local f
  read -r -a f <"/proc/$1/stat"
  echo $((f[13] + f[14]))
}

# start_redis DIR [REDIS-SERVER ARGS...]: starts redis-server on a free
# loopback port, its files in DIR (created), without snapshots; sets
# REDIS_PORT and REDIS_PID, adds it to PIDS and waits up to 5 s for PING.
start_redis() {
  local dir=$1
  shift
  mkdir -p "$dir"
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save '' "$@" \
    >"$dir/log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
}

# start_grpc_coordinator BIN URL LOG [FLAGS...]: starts BIN/sluice-coordinator
# on store URL and a free loopback port, logging to LOG; sets COORD_PID and
# ADDR, adds it to PIDS and waits up to 10 s until `sluice status` answers.
# Says so and exits 1 when it never does.
start_grpc_coordinator() {
  local bin=$1 url=$2 log=$3
  shift 3
  ADDR=127.0.0.1:$(free_port)
  "$bin/sluice-coordinator" --listen "$ADDR" --store "$url" --log-level warn "$@" >"$log" 2>&1 &
  COORD_PID=$!
  PIDS+=("$COORD_PID")
  for _ in $(seq 200); do
    "$bin/sluice" status --coordinator "$ADDR" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): the coordinator did not start:" >&2
  cat "$log" >&2
  exit 1
}

# load_one_attempt_session BIN FILE: imports backlog FILE through the
# coordinator at $ADDR and starts a session of one attempt per phase.
load_one_attempt_session() {
  "$1/sluice" import "$2" --coordinator "$ADDR" >/dev/null
  "$1/sluice" session start --coordinator "$ADDR" --max-attempts-per-phase 1 \
    --max-fingerprint-repeats 0 >/dev/null
}

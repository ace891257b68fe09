#!/usr/bin/env bash
# The scale half of issue #12: what a big backlog costs, on SQLite and Redis.
# For each store it imports a 1,000,000-phase backlog (10,000 runs) and a
# 1,000-phase one (10 runs) with `sluice import` and prints:
#   import_s, import_rss_mb   `sluice import` wall time and max RSS (/usr/bin/time -v), 1M
#   import_cpu_s              its user+system CPU time (the wall time depends on the load;
#                             on Redis most of the work is the server's, not counted here)
#   status_ms                 `sluice status` against a running coordinator, median of 3
#                             after a first call (status_first_ms) that loads the
#                             coordinator's copy of the run statistics
#   coord_rss_mb              that coordinator's peak RSS after the status calls
#   rate                      lease+report cycles/s through the real Coordinator (bench/scale_bench)
#   redis cmds/phase          INFO commandstats delta over those cycles / cycles (Redis only)
#   web ...                   (big only; WEB=0 skips it) bench/scale_web.sh: every web endpoint
#                             and /metrics, median ms, and coordinator RSS, with HISTORY
#                             (1,000,000) attempts of history added
# and the 1k/1M lease-rate ratio. A benchmark, not a test: figures vary with the machine.
#
# Usage: bench/scale.sh [sqlite|redis ...]   (default: both)
# Env: BUILD_DIR (build), BIN_DIR (use these binaries, no build), PHASES (1000000), RUNS (10000), CYCLES (1000), WORK (a temp dir), WEB (1: measure the web endpoints), HISTORY (attempts added for that, 1000000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}
PHASES=${PHASES:-1000000}
RUNS=${RUNS:-10000}
CYCLES=${CYCLES:-1000}
WORK=${WORK:-$(mktemp -d /tmp/sluice-scale.XXXXXX)}
STORES=("$@")
[ ${#STORES[@]} -eq 0 ] && STORES=(sqlite redis)
if [ -z "${BIN_DIR:-}" ]; then  # BIN_DIR: prebuilt sluice, sluice-coordinator, scale_bench
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}
  cmake -S . -B "$BUILD_DIR" -DSLUICE_BUILD_BENCH=ON >/dev/null
  cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target scale_bench sluice sluice-coordinator >/dev/null
fi
SLUICE=${BIN_DIR:-$ROOT/$BUILD_DIR/bin}/sluice
COORD=${BIN_DIR:-$ROOT/$BUILD_DIR/bin}/sluice-coordinator
BENCH=${BIN_DIR:-$ROOT/$BUILD_DIR/bench}/scale_bench
mkdir -p "$WORK"
echo "work dir: $WORK"

. bench/lib.sh  # free_port

BIG=$WORK/big.jsonl SMALL=$WORK/small.jsonl
[ -s "$BIG" ] || python3 bench/gen_backlog.py "$PHASES" "$RUNS" >"$BIG"
[ -s "$SMALL" ] || python3 bench/gen_backlog.py 1000 10 >"$SMALL"

REDIS_PID=
cleanup() { [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
REDIS_PORT=
start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no >"$WORK/redis/log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not start" >&2; exit 1
}
redis_cmds() {  # total calls over INFO commandstats (INFO itself excluded), and EVAL* calls
  redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | awk -F'[=:,]' '
    /^cmdstat_/ && !/^cmdstat_info:/ { n += $3; if ($1 ~ /eval/) e += $3 } END { print n+0, e+0 }'
}

url_for() {  # store name, size tag
  case $1 in
    sqlite) echo "sqlite://$WORK/$2.db" ;;
    redis) echo "redis://127.0.0.1:$REDIS_PORT/0?namespace=$2" ;;
  esac
}

measure_status() {  # url -> "status_ms coord_rss_mb"
  local url=$1 port pid
  port=$(free_port)
  "$COORD" --store "$url" --listen "127.0.0.1:$port" --log-level warn >"$WORK/coord.log" 2>&1 &
  pid=$!
  # Ready once the port accepts (a status call here would be the first one).
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local times=() first
  for i in 0 1 2 3; do
    local t0 t1
    t0=$(date +%s%N)
    "$SLUICE" status --coordinator "127.0.0.1:$port" >/dev/null || echo "status failed" >&2
    t1=$(date +%s%N)
    # The first call loads the coordinator's copy of every run's statistics
    # (its ready index); later ones read it: shown apart.
    if [ "$i" = 0 ]; then first=$(( (t1 - t0) / 1000000 )); else times+=($(( (t1 - t0) / 1000000 ))); fi
  done
  local rss
  rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local sorted
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  echo "${sorted[1]} $first $rss"
}

declare -A R
for store in "${STORES[@]}"; do
  [ "$store" = redis ] && start_redis
  for size in small big; do
    file=$WORK/$size.jsonl
    url=$(url_for "$store" "$size")
    /usr/bin/time -v "$SLUICE" import "$file" --store "$url" >"$WORK/import.out" 2>"$WORK/import.time"
    R[$store,$size,import_s]=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.1f", s}' "$WORK/import.time")
    R[$store,$size,import_rss]=$(awk -F': ' '/Maximum resident/ {printf "%d", $2/1024}' "$WORK/import.time")
    R[$store,$size,import_cpu]=$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.1f", s}' "$WORK/import.time")
    read -r R[$store,$size,status_ms] R[$store,$size,status_first_ms] R[$store,$size,coord_rss] < <(measure_status "$url")
    if [ "$store" = redis ]; then read -r c0 e0 < <(redis_cmds); fi
    line=$("$BENCH" --store="$url" --seconds=30 --cycles="$CYCLES")
    R[$store,$size,rate]=$(sed -E 's/.*cycles_per_s=([0-9.]+).*/\1/' <<<"$line")
    cycles=$(sed -E 's/^cycles=([0-9]+).*/\1/' <<<"$line")
    if [ "$store" = redis ]; then
      read -r c1 e1 < <(redis_cmds)
      R[$store,$size,cmds]=$(awk -v a="$c0" -v b="$c1" -v n="$cycles" 'BEGIN{printf "%.1f", (b-a)/n}')
      R[$store,$size,evals]=$(awk -v a="$e0" -v b="$e1" -v n="$cycles" 'BEGIN{printf "%.1f", (b-a)/n}')
    fi
    if [ "$size" = big ] && [ "${WEB:-1}" = 1 ]; then  # web endpoints, 1M attempts of history
      web_target=$WORK/big.db
      [ "$store" = redis ] && web_target=big
      R[$store,web]=$(COORD=$COORD REDIS_PORT=$REDIS_PORT WORK=$WORK \
        bench/scale_web.sh "$url" "$store" "$web_target" "$PHASES" "$RUNS")
    fi
    echo "$store $size: import ${R[$store,$size,import_s]} s (cpu ${R[$store,$size,import_cpu]} s, ${R[$store,$size,import_rss]} MB), status ${R[$store,$size,status_ms]} ms (first ${R[$store,$size,status_first_ms]} ms), coordinator ${R[$store,$size,coord_rss]} MB, $line" >&2
  done
  if [ "$store" = redis ]; then cleanup; REDIS_PID=; fi
done

printf '\n%-7s %-6s %10s %12s %14s %10s %16s %14s %10s %12s %14s\n' store size import_s import_cpu_s import_rss_mb status_ms status_first_ms coord_rss_mb rate/s redis_cmds redis_scripts
for store in "${STORES[@]}"; do
  for size in small big; do
    printf '%-7s %-6s %10s %12s %14s %10s %16s %14s %10s %12s %14s\n' "$store" "$size" \
      "${R[$store,$size,import_s]}" "${R[$store,$size,import_cpu]}" "${R[$store,$size,import_rss]}" "${R[$store,$size,status_ms]}" "${R[$store,$size,status_first_ms]}" \
      "${R[$store,$size,coord_rss]}" "${R[$store,$size,rate]}" "${R[$store,$size,cmds]:--}" "${R[$store,$size,evals]:--}"
  done
  awk -v a="${R[$store,small,rate]}" -v b="${R[$store,big,rate]}" -v s="$store" \
    'BEGIN{printf "%s: lease rate 1k/1M = %.2fx (goal <= 1.2x)\n", s, (b>0 ? a/b : 0)}'
done
for store in "${STORES[@]}"; do [ -n "${R[$store,web]:-}" ] && echo "${R[$store,web]}"; done
echo "(small = 1,000 phases in 10 runs; big = $PHASES phases in $RUNS runs)"

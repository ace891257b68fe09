#!/usr/bin/env bash
# Dispatch throughput of sluice against this machine's limits and peers, in ONE
# run (issue #12, the throughput rows), on SQLite and on Redis:
#   (a) the spawn limit: bench/spawn_bench, N x /bin/true by posix_spawn from 2 threads;
#   (b) GNU parallel -j2 --timeout 10 --joblog on the same N phases;
#   (c) `sluice drain` of N /bin/true phases, shapes 1x2, 2x1, 2x4 (workers x slots), best of;
#   (d) dispatch overhead per phase over a bare shell loop (/bin/true, python3 -S -c pass), 1x1;
#   (e) lease+report cycles per second through real gRPC over loopback against a
#       sluice-coordinator process (bench/fleet_bench cycles, 1 and 4 workers;
#       one grant per lease and unary reports, then 8 grants per lease reported
#       in one ReportBatch);
#   (f) idle-fleet cost: W real WorkerAgents (one channel each, from one process:
#       bench/fleet_bench idle) connected with nothing to lease; the coordinator's
#       and the fleet's CPU from /proc/PID/stat over a window.
# Prints each figure and its ratio to the issue's goal. A benchmark, not a test:
# `--quick` runs every step tiny (CI: checks that it works, asserts no timing).
#
#   bench/compare.sh [--quick] [--stores=sqlite,redis] [--phases=N] [--idle-workers=W] [--repeat=R] [--steps=abcdef]
# BUILD_DIR (default build-bench) is configured with -DSLUICE_BUILD_BENCH=ON and
# the needed targets are built; JOBS=N sets build jobs. SLUICE_BIN_DIR and
# SLUICE_BENCH_DIR point at other binaries (e.g. copies of an older build, for
# a before/after comparison). Needs redis-server and GNU parallel on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
STORES=sqlite,redis
PHASES=2000
IDLE_WORKERS=1000
IDLE_SECONDS=10
REPEAT=3
STEPS=abcdef
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --stores=*) STORES=${arg#*=} ;;
    --phases=*) PHASES=${arg#*=} ;;
    --idle-workers=*) IDLE_WORKERS=${arg#*=} ;;
    --repeat=*) REPEAT=${arg#*=} ;;
    --steps=*) STEPS=${arg#*=} ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then
  PHASES=60 IDLE_WORKERS=20 IDLE_SECONDS=2 REPEAT=1
fi
LOOP_TRUE=$((PHASES / 4)) LOOP_PY=$((PHASES / 10))
CYCLES=$((PHASES * 2))

BUILD_DIR=${BUILD_DIR:-build-bench}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
if [[ ! -f $BUILD_DIR/CMakeCache.txt ]] || ! grep -q 'SLUICE_BUILD_BENCH:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_BUILD_BENCH=ON >/dev/null
fi
cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target sluice sluice-coordinator sluice-worker \
  spawn_bench fleet_bench >/dev/null
BIN=${SLUICE_BIN_DIR:-$ROOT/$BUILD_DIR/bin}
BENCH=${SLUICE_BENCH_DIR:-$ROOT/$BUILD_DIR/bench}
command -v parallel >/dev/null || { echo "compare.sh: GNU parallel is not installed" >&2; exit 3; }
command -v redis-server >/dev/null || { echo "compare.sh: redis-server is not installed" >&2; exit 3; }

. bench/lib.sh  # bench_scratch, free_port, backlog, start_redis, start_grpc_coordinator, ...
bench_scratch compare
RESULTS=$TMP/results.txt
: >"$RESULTS"
record() { echo "$1 $2" >>"$RESULTS"; printf '  %-40s %s\n' "$1" "$2"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.4f}')" "$1" "$2"; }
best() { sort -g | tail -1; }  # highest of stdin
least() { sort -g | head -1; }

REDIS_PORT=
if [[ ,$STORES, == *,redis,* ]]; then
  start_redis "$TMP/redis" --appendonly yes --appendfsync everysec --daemonize no
fi
# A fresh, empty store URL for store $1 (callers run it in a subshell, so
# uniqueness comes from a new directory, not a counter).
store_url() {
  local dir; dir=$(mktemp -d "$TMP/store.XXXXXX")
  if [[ $1 == sqlite ]]; then
    echo "sqlite://$dir/state.db"
  else
    echo "redis://127.0.0.1:$REDIS_PORT/0?namespace=${dir##*.}"
  fi
}

echo "sluice dispatch comparison: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), phases=$PHASES, $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

step() { [[ $STEPS == *$1* ]]; }
if step a; then
echo "(a) spawn limit: $PHASES x /bin/true by posix_spawn from 2 threads (best of $REPEAT)"
SPAWN=$(for _ in $(seq $REPEAT); do "$BENCH/spawn_bench" "$PHASES" 2 /bin/true | cut -d' ' -f3; done | best)
record spawn_per_s "$SPAWN"
fi

if step b; then
echo "(b) GNU parallel -j2 --timeout 10 --joblog on $PHASES x /bin/true (best of $REPEAT)"
PAR=$(for _ in $(seq $REPEAT); do
  t0=$(now); seq "$PHASES" | parallel -j2 --timeout 10 --joblog "$TMP/joblog" /bin/true; t1=$(now)
  python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$PHASES" "$(elapsed "$t0" "$t1")"
done | best)
record parallel_per_s "$PAR"
fi

# `sluice drain` of backlog $2 with --exec $3, $4 workers x $5 slots on store $1; prints seconds.
drain_seconds() {
  local url; url=$(store_url "$1")
  local t0 t1
  t0=$(now)
  if ! "$BIN/sluice" drain "$2" --exec "$3" --workers "$4" --slots "$5" --store "$url" \
      --log-dir "$TMP/logs" --json >"$TMP/drain.json" 2>"$TMP/drain.err"; then
    echo "compare.sh: sluice drain failed:" >&2; tail -20 "$TMP/drain.err" >&2; exit 1
  fi
  t1=$(now)
  rm -rf "$TMP/logs"
  elapsed "$t0" "$t1"
}

backlog "$PHASES" "$TMP/backlog.jsonl"
backlog "$LOOP_TRUE" "$TMP/loop_true.jsonl"
backlog "$LOOP_PY" "$TMP/loop_py.jsonl"
IFS=, read -r -a STORE_LIST <<<"$STORES"
for store in "${STORE_LIST[@]}"; do
  step c || continue
  echo "(c) sluice drain of $PHASES x /bin/true on $store, workers x slots (best of $REPEAT each)"
  for shape in 1x2 2x1 2x4; do
    w=${shape%x*} s=${shape#*x}
    rate=$(for _ in $(seq $REPEAT); do
      sec=$(drain_seconds "$store" "$TMP/backlog.jsonl" /bin/true "$w" "$s")
      python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$PHASES" "$sec"
    done | best)
    record "drain_${store}_${shape}_per_s" "$rate"
  done
done

step d && echo "(d) dispatch overhead per phase over a bare shell loop (sluice drain 1 worker x 1 slot, ${STORE_LIST[0]})"
for cmd in true py; do
  step d || continue
  if [[ $cmd == true ]]; then n=$LOOP_TRUE; file=$TMP/loop_true.jsonl; exec_cmd=/bin/true; run=(/bin/true)
  else n=$LOOP_PY; file=$TMP/loop_py.jsonl; exec_cmd="python3 -S -c pass"; run=(python3 -S -c pass); fi
  loop=$(for _ in $(seq $REPEAT); do
    t0=$(now); for ((i = 0; i < n; i++)); do "${run[@]}"; done; t1=$(now); elapsed "$t0" "$t1"
  done | least)
  drain=$(for _ in $(seq $REPEAT); do drain_seconds "${STORE_LIST[0]}" "$file" "$exec_cmd" 1 1; done | least)
  per=$(python3 -c "import sys; l,d,n=map(float,sys.argv[1:]); print(f'{l/n*1000:.2f} {d/n*1000:.2f} {(d-l)/n*1000:.2f}')" "$loop" "$drain" "$n")
  read -r loop_ms drain_ms over_ms <<<"$per"
  record "overhead_${cmd}_loop_ms" "$loop_ms"
  record "overhead_${cmd}_drain_ms" "$drain_ms"
  record "overhead_${cmd}_ms" "$over_ms"
done

# Starts sluice-coordinator on store $1 (fresh) with extra flags; sets COORD_PID and ADDR.
start_coordinator() {
  local url; url=$(store_url "$1"); shift
  start_grpc_coordinator "$BIN" "$url" "$TMP/coord.log" "$@"
}
stop_coordinator() { kill "$COORD_PID" 2>/dev/null || true; wait "$COORD_PID" 2>/dev/null || true; }
# Imports $1 phases through the coordinator and starts a one-attempt session.
load_session() {
  backlog "$1" "$TMP/cycles.jsonl"
  load_one_attempt_session "$BIN" "$TMP/cycles.jsonl"
}

for store in "${STORE_LIST[@]}"; do
  step e || continue
  echo "(e) lease+report cycles through gRPC on $store ($CYCLES phases per case)"
  # 1 and 4 workers with one grant per lease and unary reports; then 1 and 4
  # workers taking 8 grants per lease and reporting them in one ReportBatch.
  for shape in 1:1 4:1 1:8b 4:8b; do
    k=${shape%%:*} per=${shape#*:} extra=()
    [[ $per == *b ]] && per=${per%b} extra=(batch)
    start_coordinator "$store"
    load_session "$CYCLES"
    # Older fleet_bench binaries (SLUICE_BENCH_DIR) know no batch: skipped.
    out=$("$BENCH/fleet_bench" cycles "$ADDR" "$k" "$CYCLES" "$per" "${extra[@]}") || out=
    stop_coordinator
    [[ -n $out ]] || { echo "  (fleet_bench cannot run shape $shape: skipped)"; continue; }
    name=${k}w; [[ ${#extra[@]} -gt 0 ]] && name=${k}wx${per}batch
    record "cycles_${store}_${name}_per_s" "$(cut -d' ' -f3 <<<"$out")"
  done
done

TICKS=$(getconf CLK_TCK)  # of cpu_ticks (lib.sh)
for store in "${STORE_LIST[@]}"; do
  step f || continue
  echo "(f) idle fleet on $store: $IDLE_WORKERS worker agents, nothing to lease, CPU over ${IDLE_SECONDS} s"
  start_coordinator "$store"
  load_session 1
  "$BENCH/fleet_bench" cycles "$ADDR" 1 1 >/dev/null  # the one phase is done: nothing left
  warm=$((IDLE_WORKERS / 100 + 3))  # connect and register first
  "$BENCH/fleet_bench" idle "$ADDR" "$IDLE_WORKERS" "$TMP/idle" >"$TMP/idle.out" 2>"$TMP/idle.err" &
  FLEET_PID=$!
  PIDS+=("$FLEET_PID")
  sleep "$warm"
  c0=$(cpu_ticks "$COORD_PID"); f0=$(cpu_ticks "$FLEET_PID"); t0=$(now)
  sleep "$IDLE_SECONDS"
  c1=$(cpu_ticks "$COORD_PID"); f1=$(cpu_ticks "$FLEET_PID"); t1=$(now)
  kill -TERM "$FLEET_PID"
  wait "$FLEET_PID" || { echo "compare.sh: the idle fleet failed:" >&2; tail "$TMP/idle.err" >&2; exit 1; }
  stop_coordinator
  read -r coord_pct worker_pct <<<"$(python3 -c "import sys; c0,c1,f0,f1,t0,t1,n,hz=map(float,sys.argv[1:]); w=(t1-t0)*hz; print(f'{(c1-c0)/w*100:.2f} {(f1-f0)/w*100/n:.4f}')" "$c0" "$c1" "$f0" "$f1" "$t0" "$t1" "$IDLE_WORKERS" "$TICKS")"
  record "idle_${store}_coordinator_pct" "$coord_pct"
  record "idle_${store}_worker_pct" "$worker_pct"
  rm -rf "$TMP/idle"
done

python3 - "$RESULTS" "$STORES" "$IDLE_WORKERS" "$QUICK" <<'PY'
import sys
r = {k: float(v) for k, v in (l.split() for l in open(sys.argv[1]) if l.strip())}
stores, idle_n, quick = sys.argv[2].split(","), sys.argv[3], sys.argv[4] == "1"
rows = []
spawn, par = r.get("spawn_per_s"), r.get("parallel_per_s")
for s in stores:
    shapes = {k.split("_")[2]: v for k, v in r.items() if k.startswith(f"drain_{s}_")}
    if not shapes or not spawn or not par:
        continue
    shape, rate = max(shapes.items(), key=lambda kv: kv[1])
    rows.append((f"drain {s} (best shape {shape}) / spawn limit", f"{rate:,.0f} / {spawn:,.0f}/s",
                 f"{rate / spawn:.2f}", ">= 0.8", rate / spawn >= 0.8))
    rows.append((f"drain {s} (best shape {shape}) / GNU parallel", f"{rate:,.0f} / {par:,.0f}/s",
                 f"{rate / par:.2f}", ">= 1.5", rate / par >= 1.5))
for c in ("true", "py"):
    if f"overhead_{c}_ms" not in r:
        continue
    o = r[f"overhead_{c}_ms"]
    rows.append((f"overhead per phase, {'/bin/true' if c == 'true' else 'python3 -S -c pass'}",
                 f"{r[f'overhead_{c}_drain_ms']:.2f} vs {r[f'overhead_{c}_loop_ms']:.2f} ms",
                 f"{o:.2f} ms", "<= 1 ms", o <= 1))
goal = {"sqlite": 3200, "redis": 7100}
for s in stores:
    rates = {k: v for k, v in r.items() if k.startswith(f"cycles_{s}_")}
    if not rates:
        continue
    best = max(rates.values())
    per_k = ", ".join(f"{k.split('_')[2]} {v:,.0f}" for k, v in sorted(rates.items()))
    rows.append((f"lease+report cycles/s via gRPC, {s}", per_k, f"{best:,.0f}/s",
                 f">= {goal[s]:,}/s", best >= goal[s]))
for s in stores:
    if f"idle_{s}_coordinator_pct" not in r:
        continue
    c, w = r[f"idle_{s}_coordinator_pct"], r[f"idle_{s}_worker_pct"]
    rows.append((f"{idle_n} idle workers, coordinator CPU, {s}", "", f"{c:.2f} %", "< 5 %", c < 5))
    rows.append((f"{idle_n} idle workers, per-worker CPU, {s}", "", f"{w:.4f} %", "< 0.02 %", w < 0.02))
print("\n| what | measured | figure | goal | met |\n|---|---|---|---|---|")
for what, measured, fig, g, ok in rows:
    print(f"| {what} | {measured} | {fig} | {g} | {'yes' if ok else 'NO'} |")
if quick:
    print("\n(--quick: tiny sizes; the figures only show that every step works)")
PY

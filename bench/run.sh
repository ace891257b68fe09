#!/usr/bin/env bash
# Builds bench/ in build-bench/ (RelWithDebInfo, -DSLUICE_BUILD_BENCH=ON) and
# runs lease_report_bench: lease-and-report cycles per second through the
# Coordinator with 1, 4 and 16 simulated workers, on SQLite and on Redis, plus
# Redis commands and bytes per phase. Prints a summary with the Redis/SQLite
# ratio. Extra arguments go to the benchmark (e.g. --benchmark_repetitions=3).
# Needs redis-server on PATH (or $SLUICE_REDIS_SERVER). JOBS=N sets build jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B "$BUILD_DIR" -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target lease_report_bench
OUT="$BUILD_DIR/bench/lease_report_bench.json"
"$BUILD_DIR/bench/lease_report_bench" --benchmark_counters_tabular=true \
  --benchmark_out="$OUT" --benchmark_out_format=json "$@"
python3 - "$OUT" <<'PY'
import json, re, sys
data = json.load(open(sys.argv[1]))
ctx = data["context"]
print(f"\n{ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, load {ctx.get('load_avg')}; "
      "sluice built RelWithDebInfo (the 'DEBUG' warning is about Debian's libbenchmark)")
rates = {}
extra = {}
for b in data["benchmarks"]:
    if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
        continue
    m = re.match(r"LeaseAndReport/(\w+)/.*threads:(\d+)", b["name"])
    if not m:
        continue
    store, k = m.group(1), int(m.group(2))
    rates.setdefault((store, k), []).append(b["items_per_second"])
    if store.startswith("redis"):
        extra[(store, k)] = (b.get("redis_cmds_per_phase", 0), b.get("redis_bytes_per_phase", 0),
                             b.get("redis_scripts_per_phase", 0))
def median(key):
    v = sorted(rates.get(key, [0]))
    return v[len(v) // 2]
print(f"{'workers':>8} {'sqlite cycles/s':>16} {'redis cycles/s':>15} {'redis/sqlite':>13} "
      f"{'redis scripts/phase':>20} {'redis cmds/phase':>17} {'redis bytes/phase':>18}")
for store in ("redis", "redisfenced"):
    if not any(s_ == store for s_, _ in rates):
        continue
    print(f"-- {store}" + (" (leader lease held, every write checks the leader epoch)"
                           if store == "redisfenced" else ""))
    for k in sorted({k for _, k in rates}):
        s = median(("sqlite", k))
        r = median((store, k))
        cmds, nbytes, scripts = extra.get((store, k), (0, 0, 0))
        ratio = r / s if s else float("nan")
        print(f"{k:>8} {s:>16,.0f} {r:>15,.0f} {ratio:>13.2f} {scripts:>20.1f} {cmds:>17.1f} "
              f"{nbytes:>18,.0f}")
PY

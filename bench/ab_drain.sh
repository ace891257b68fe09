#!/usr/bin/env bash
# Before/after for `sluice drain`: alternates two binary directories (each
# with sluice, sluice-worker, sluice-phase-shim) on a fresh SQLite store and
# prints the median milliseconds per phase of each. Alternating, on the same
# machine at the same time, is what makes a small difference visible on a
# noisy machine where two runs of the same binaries differ by 20 %.
#
#   bench/ab_drain.sh OLD_BIN NEW_BIN PHASES ROUNDS COMMAND...
#   WORKERS=1 SLOTS=1 (defaults)
# e.g. bench/ab_drain.sh /tmp/old/bin build-bench/bin 500 5 /bin/true
# It is a benchmark, not a test: it asserts nothing.
set -euo pipefail
if [[ $# -lt 5 ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
OLD=$1 NEW=$2 PHASES=$3 ROUNDS=$4
shift 4
CMD="$*"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-ab.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"  # backlog
backlog "$PHASES" "$TMP/backlog.jsonl"
echo "ab_drain: $PHASES x '$CMD', ${WORKERS:-1} workers x ${SLOTS:-1} slots, $ROUNDS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
# One more round than asked for, dropped: the first drain after a build
# pays for cold page caches (the same binaries measured 7.3 against 5.7 ms
# per phase as the first and second drain).
for _ in $(seq "$((ROUNDS + 1))"); do
  for side in old new; do
    bin=$OLD
    [[ $side == new ]] && bin=$NEW
    rm -rf "$TMP/store" "$TMP/logs"
    mkdir "$TMP/store"
    t0=$(date +%s.%N)
    if ! "$bin/sluice" drain "$TMP/backlog.jsonl" --exec "$CMD" --workers "${WORKERS:-1}" \
        --slots "${SLOTS:-1}" --store "sqlite://$TMP/store/state.db" --log-dir "$TMP/logs" \
        --json >/dev/null 2>"$TMP/err"; then
      echo "ab_drain: $side drain failed:" >&2
      tail -20 "$TMP/err" >&2
      exit 1
    fi
    t1=$(date +%s.%N)
    echo "$side $t0 $t1"
  done
done | tail -n +3 | python3 -c '
import statistics, sys
n = int(sys.argv[1])
per = {}
for line in sys.stdin:
    side, t0, t1 = line.split()
    per.setdefault(side, []).append((float(t1) - float(t0)) / n * 1000)
for side in ("old", "new"):
    xs = per[side]
    runs = " ".join("%.2f" % x for x in xs)
    print("%s: median %.3f ms per phase  (runs: %s)" % (side, statistics.median(xs), runs))
print("new / old: %.3f" % (statistics.median(per["new"]) / statistics.median(per["old"])))
' "$PHASES"

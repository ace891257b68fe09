#!/usr/bin/env bash
# The web view and /metrics at scale (issues #14 item 8 and #15), called by
# bench/scale.sh for its 1M-phase store: adds HISTORY attempts of history
# (bench/gen_history.py), starts sluice-coordinator with --http-listen, GETs
# every endpoint 5 times and prints one line of medians in ms plus the
# coordinator's peak RSS (VmHWM) after start-up (which loads the history
# without output tails) and those requests. A benchmark, not a test.
#
# Usage: bench/scale_web.sh STORE_URL sqlite|redis DB_PATH|NAMESPACE PHASES RUNS
# Env: COORD (sluice-coordinator), HISTORY (1000000), REDIS_PORT (redis), WORK (temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1 kind=$2 target=$3 phases=$4 runs=$5
HISTORY=${HISTORY:-1000000}
WORK=${WORK:-$(mktemp -d /tmp/sluice-web.XXXXXX)}
. bench/lib.sh

if [ "$HISTORY" -gt 0 ]; then
  if [ "$kind" = sqlite ]; then
    python3 bench/gen_history.py sqlite "$target" "$HISTORY" "$phases" "$runs"
  else
    python3 bench/gen_history.py redis "$target" "$HISTORY" "$phases" "$runs" |
      redis-cli -p "$REDIS_PORT" --pipe >/dev/null
  fi
fi

pid=
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; fi' EXIT
start_web_coordinator "$COORD" "$url" "$WORK/coord-web.log"
t0=$(date +%s%N)
curl -sf "$base/api/overview" >/dev/null  # the first call loads the history
first_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

median_ms() {  # path -> median of 5 GETs in ms
  local times=() t
  for _ in 1 2 3 4 5; do
    t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$base$1")
    [ "${t%% *}" = 200 ] || echo "GET $1: HTTP ${t%% *}" >&2
    times+=("$(awk -v s="${t#* }" 'BEGIN{printf "%.1f", s*1000}')")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}

line="web $kind history=$HISTORY first_overview_ms=$first_ms"
for ep in overview:/api/overview \
          runs:'/api/runs?sort=events&order=desc&limit=50' \
          runs_page_100:'/api/runs?offset=5000&limit=50' \
          runs_family:'/api/runs?group=family&limit=50' \
          fingerprints:/api/fingerprints \
          workers:/api/workers \
          phase:'/api/phase?run=run-00000&phase=phase-0000000&limit=50' \
          metrics:/metrics; do
  line+=" ${ep%%:*}_ms=$(median_ms "${ep#*:}")"
done
rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
echo "$line coord_rss_mb=$rss"

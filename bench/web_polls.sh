#!/usr/bin/env bash
# What a watched coordinator costs at scale (issue #15: "no page load scans
# the store"): starts COORD on STORE_URL with the web view, GETs each
# endpoint that used to read every run (the overview and /metrics through
# Coordinator::Status, the runs views that need every run) N times, and
# prints each one's median and max in ms, then the coordinator's CPU while
# idle for 20 s: first with a families page requested in the last minute
# (its background snapshot kept fresh), then with nobody looking.
# A benchmark, not a test.
#
# Usage: bench/web_polls.sh COORD STORE_URL [N]
# A store with an active session, many runs and no worker shows the case
# (nothing leased: the session-end check decides every run), e.g. from
#   python3 bench/gen_backlog.py ... && sluice import ... && sluice session start ...
set -euo pipefail
coord=$1 url=$2 n=${3:-8}
. "$(dirname "$0")/lib.sh"
log=$(mktemp /tmp/web-polls.XXXXXX)
pid=
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; fi; rm -f "$log"' EXIT
start_web_coordinator "$coord" "$url" "$log"
curl -sf "$base/api/overview" >/dev/null  # start-up work (the history) is not a poll
stats() {  # path -> "median max" in ms of n GETs, 0.3 s apart (a page polls)
  for _ in $(seq "$n"); do
    curl -s -o /dev/null -w '%{time_total}\n' "$base$1"
    sleep 0.3
  done | sort -n | awk '{a[NR]=$1*1000} END {printf "%.1f %.1f\n", a[int((NR+1)/2)], a[NR]}'
}
printf '%-44s %10s %10s\n' endpoint median_ms max_ms
for path in /api/overview /api/workers /metrics "/api/runs?group=family&limit=50" \
  "/api/runs?state=skipped&limit=50" "/api/runs?sort=family&limit=50"; do
  read -r med max < <(stats "$path")
  printf '%-44s %10s %10s\n' "$path" "$med" "$max"
done
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
a=$(ticks); sleep 20; b=$(ticks)
printf 'idle CPU, a families page open:  %5.1f %% of a core\n' "$(echo "($b-$a)*100/$hz/20" | bc -l)"
sleep 45; a=$(ticks); sleep 20; b=$(ticks)
printf 'idle CPU, nobody looking:        %5.1f %% of a core\n' "$(echo "($b-$a)*100/$hz/20" | bc -l)"

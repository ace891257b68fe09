#!/usr/bin/env bash
# Where one phase's wall time goes in `sluice drain`, 1 worker x 1 slot: the
# kernel's process events (fork, exec, exit) of every process, recorded with
# `perf record -a` (tracepoints only: unlike strace they do not slow the
# syscalls down), cut into segments per phase and printed as medians:
#
#   lease->shim     the worker's phase thread starts (the lease is in) until
#                   the shim is forked (logs opened, pipe, posix_spawn)
#   shim->exec      the shim starts until the phase's exec is done (the
#                   shim's exec and start-up, its fork of the phase)
#   phase           the phase's exec until its exit (the command itself)
#   exit->shim exit the shim kills and reaps what is left, and exits
#   shim exit->done the worker reaps the shim, reads tails, spools the
#                   outcome and waits for the report's answer
#   done->lease     the phase thread ends until the next one starts (the
#                   grant to a lease call already waiting at the coordinator
#                   for that report, its answer, the new thread)
#
#   bench/phase_timeline.sh [PHASES] [COMMAND...]   (default 1000 /bin/true)
# Needs perf and permission for system-wide tracepoints (root, or
# kernel.perf_event_paranoid <= -1). A benchmark: it asserts nothing.
set -euo pipefail
PHASES=${1:-1000}
shift || true
CMD=${*:-/bin/true}
BIN=${SLUICE_BIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build-bench/bin}
. "$(dirname "$0")/lib.sh"
bench_scratch phase-timeline
backlog "$PHASES" "$TMP/backlog.jsonl"
mkdir "$TMP/store"
if ! perf record -q -e sched:sched_process_exec,sched:sched_process_fork,sched:sched_process_exit \
    -a -o "$TMP/perf.data" -- "$BIN/sluice" drain "$TMP/backlog.jsonl" --exec "$CMD" \
    --workers 1 --slots 1 --store "sqlite://$TMP/store/state.db" --log-dir "$TMP/logs" \
    --json >/dev/null 2>"$TMP/err"; then
  echo "phase_timeline: the drain (or perf) failed:" >&2
  tail -20 "$TMP/err" >&2
  exit 1
fi
perf script -i "$TMP/perf.data" -F comm,pid,tid,time,event,trace 2>/dev/null | python3 -c '
import re, statistics, sys
program = sys.argv[1].split()[0].rsplit("/", 1)[-1][:15]
rows, cur, forked_at = [], {}, {}
for line in sys.stdin:
    m = re.match(r"\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):\s+sched:(\w+):\s+(.*)", line)
    if not m:
        continue
    comm, pid, tid, t, event, rest = m.groups()
    comm, t = comm.strip(), float(t)
    if event == "sched_process_fork" and comm == "sluice-worker":
        forked_at[rest.rsplit("child_pid=", 1)[1].strip()] = t
        if pid == tid:  # the main thread starts a phase thread
            if "done" in cur:
                cur["next"] = t
                rows.append(cur)
            cur = {"thread": t}
    elif event == "sched_process_exec" and "thread" in cur and "shim" not in cur \
            and pid in forked_at:  # the shim (or, uncontained, the phase): a spawned child
        cur["shim"] = forked_at[pid]
        if "sluice-phase-shim" not in rest:
            cur["exec"] = t
    elif event == "sched_process_exec" and "shim" in cur and "exec" not in cur:
        cur["exec"] = t
    elif event == "sched_process_exit" and comm == program and "exec" in cur and "exit" not in cur:
        cur["exit"] = t
    elif event == "sched_process_exit" and comm == "sluice-phase-sh" and "exit" in cur \
            and "shim_exit" not in cur:
        cur["shim_exit"] = t
    elif event == "sched_process_exit" and comm == "sluice-worker" and "shim_exit" in cur \
            and "done" not in cur:
        cur["done"] = t
keys = ["thread", "shim", "exec", "exit", "shim_exit", "done", "next"]
rows = [r for r in rows if all(k in r for k in keys)]
if not rows:
    sys.exit("phase_timeline: no complete phase found in the trace")
names = ["lease->shim", "shim->exec", "phase", "exit->shim exit", "shim exit->done",
         "done->lease"]
print(f"phase_timeline: {len(rows)} phases of {sys.argv[1]!r}, 1x1, medians in ms")
for name, a, b in zip(names, keys, keys[1:]):
    print(f"  {name:<16} {statistics.median((r[b] - r[a]) * 1000 for r in rows):7.3f}")
whole = statistics.median((r["next"] - r["thread"]) * 1000 for r in rows)
label = "per phase"
print(f"  {label:<16} {whole:7.3f}")
' "$CMD"

#!/usr/bin/env python3
"""An example phase program for a sluice worker image (docker/worker-example).

sluice runs it once per leased phase, as

    python3 /opt/phases/drain_one_phase.py --run-id {run_id} --phase-id {phase_id}

in its own process group, with SLUICE_RUN_ID, SLUICE_PHASE_ID, SLUICE_ATTEMPT,
SLUICE_LEASE_ID, SLUICE_SESSION_ID and SLUICE_TELEMETRY_FILE set. The contract:

- exit 0 when the phase succeeded, non-zero when it failed; the last lines of
  stderr become the failure text that sluice fingerprints;
- append one JSON object per line to $SLUICE_TELEMETRY_FILE for each event
  worth counting (sluice counts lines by their "type");
- stop promptly on SIGTERM (timeout, cancellation, worker drain); sluice sends
  SIGKILL to the whole process group after --grace-seconds.

Replace the body of run_phase() with the real work.
"""
import argparse
import json
import os
import signal
import sys
import time


def emit(event_type, **fields):
    path = os.environ.get("SLUICE_TELEMETRY_FILE")
    if not path:
        return
    fields.update(type=event_type, ts_ms=int(time.time() * 1000))
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


def run_phase(run_id, phase_id, attempt):
    # The real work goes here: check out the run, rebuild the phase, apply
    # the patch... This example succeeds after a short pause.
    time.sleep(0.2)
    emit("patch_applied", run_id=run_id, phase_id=phase_id, attempt=attempt, files_changed=1)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--phase-id", required=True)
    args = parser.parse_args()
    # SIGTERM: exit as "cancelled" promptly; sluice records the outcome.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    attempt = int(os.environ.get("SLUICE_ATTEMPT", "1"))
    try:
        return run_phase(args.run_id, args.phase_id, attempt)
    except Exception as e:  # the message is what sluice fingerprints
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

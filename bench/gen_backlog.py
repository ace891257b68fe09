#!/usr/bin/env python3
"""Writes a synthetic JSONL backlog: PHASES phases spread evenly over RUNS runs.

Usage: gen_backlog.py PHASES RUNS > backlog.jsonl
"""
import sys


def main() -> None:
    phases, runs = int(sys.argv[1]), int(sys.argv[2])
    per_run = max(1, phases // runs)
    out = sys.stdout
    for i in range(phases):
        run = i // per_run
        out.write('{"run_id": "run-%05d", "phase_id": "phase-%07d", "phase_index": %d, '
                  '"priority": 0, "last_error": "scale bench"}\n' % (run, i, i % per_run))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a synthetic JSONL backlog: PHASES phases spread evenly over RUNS runs.

Usage: gen_backlog.py PHASES RUNS > backlog.jsonl
"""
import argparse
import sys


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive count")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Writes a synthetic JSONL backlog to standard output: PHASES phases "
        "spread evenly over RUNS runs (the scale benchmarks' input).")
    parser.add_argument("phases", type=positive, metavar="PHASES", help="phases to write")
    parser.add_argument("runs", type=positive, metavar="RUNS", help="runs to spread them over")
    args = parser.parse_args()
    per_run = max(1, args.phases // args.runs)
    out = sys.stdout
    for i in range(args.phases):
        run = i // per_run
        out.write('{"run_id": "run-%05d", "phase_id": "phase-%07d", "phase_index": %d, '
                  '"priority": 0, "last_error": "scale bench"}\n' % (run, i, i % per_run))


if __name__ == "__main__":
    main()

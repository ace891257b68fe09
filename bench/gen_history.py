#!/usr/bin/env python3
"""Adds N attempts of history to a store made by `sluice import` of a
gen_backlog.py backlog (PHASES phases in RUNS runs), for bench/scale_web.sh:
what the coordinator's memory and the web pages cost with a long history.

Attempts go to existing phases round-robin (phase i gets attempts i, i+PHASES,
...), 90 % succeeded with 1-50 events and 10 % failed with one of 50 error
texts; each carries a 200-byte stderr tail. Session "S-history". Only the
attempt records, their indexes and the session's count of finished attempts
are written (phase and run counters are left alone: this is history for the
readers, not a drain).

Usage:
  gen_history.py sqlite DB_PATH N PHASES RUNS
  gen_history.py redis NAMESPACE N PHASES RUNS | redis-cli -p PORT --pipe
"""
import json
import sqlite3
import sys

TAIL = "x" * 200


def attempts(n, phases, runs):
    per_run = max(1, phases // runs)
    for k in range(n):
        i = k % phases
        run, phase = "run-%05d" % (i // per_run), "phase-%07d" % i
        failed = k % 10 == 9
        outcome = "failed" if failed else "succeeded"
        err = "error: cause %d" % (k % 50) if failed else ""
        fp = "failed|1|cause %d" % (k % 50) if failed else ""
        events = 0 if failed else 1 + k % 50
        t = 1_700_000_000_000 + k
        yield ("H%08d" % k, run, phase, 1 + k // phases, 1, "w-hist", "S-history", outcome,
               1 if failed else 0, 0, 1000 + k % 5000, err, fp, events,
               json.dumps({"event": events}) if events else "{}", "", TAIL, t - 1000, t)


def sqlite_history(path, n, phases, runs):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executemany(
        "INSERT INTO attempts(lease_id, run_id, phase_id, attempt, epoch, worker_id, session_id, "
        "outcome, exit_code, signal, duration_ms, error_text, fingerprint, telemetry_events, "
        "telemetry_by_type, stdout_tail, stderr_tail, started_at, ended_at) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", attempts(n, phases, runs))
    # Every attempt here succeeded or failed: all count toward the session.
    # A store from before the table gets it counted from the attempts when
    # sluice first opens it.
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='session_attempts'").fetchone():
        db.execute("INSERT INTO session_attempts(session_id, finished) VALUES('S-history', ?) "
                   "ON CONFLICT(session_id) DO UPDATE SET finished=finished+excluded.finished",
                   (n,))
    db.commit()


def resp(*args):
    out = ["*%d\r\n" % len(args)]
    for a in args:
        b = str(a)
        out.append("$%d\r\n%s\r\n" % (len(b.encode()), b))
    return "".join(out)


FIELDS = ["lease_id", "run_id", "phase_id", "attempt", "epoch", "worker_id", "session_id",
          "outcome", "exit_code", "signal", "duration_ms", "error_text", "fingerprint",
          "telemetry_events", "telemetry_by_type", "stdout_tail", "stderr_tail", "started_at",
          "ended_at"]


def redis_history(ns, n, phases, runs):
    p = ns + ":"
    w = sys.stdout.write
    for a in attempts(n, phases, runs):
        lease, run, phase = a[0], a[1], a[2]
        args = ["HSET", p + "attempt:" + lease]
        for f, v in zip(FIELDS, a):
            args += [f, v]
        w(resp(*args))
        w(resp("RPUSH", p + "attempts", lease))
        w(resp("RPUSH", p + "session_attempts:S-history", lease))
        w(resp("RPUSH", "%sphase_attempts:%d:%s:%s" % (p, len(run), run, phase), lease))
    w(resp("INCRBY", p + "session_count:S-history", n))


def main():
    kind, target, n, phases, runs = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    if kind == "sqlite":
        sqlite_history(target, n, phases, runs)
    else:
        redis_history(target, n, phases, runs)


if __name__ == "__main__":
    main()

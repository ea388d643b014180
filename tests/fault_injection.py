"""Run the `salesintel` command and kill it (SIGKILL, as a crash or the OOM killer would) at its N-th write.

    python -m tests.fault_injection --kill-at N --trace FILE -- ARGS...

Every statement that changes the store (BEGIN, INSERT, UPDATE, DELETE, COMMIT, schema changes) on any connection
the process opens is counted and its kind written to FILE, one per line, before it runs; the N-th is never run: the
process kills itself first. Without --kill-at it runs to the end, so a first run lists every write boundary.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import sys

WRITE = re.compile(r"^\s*(BEGIN|INSERT|UPDATE|DELETE|COMMIT|CREATE|ALTER|DROP|REPLACE)\b", re.IGNORECASE)


def kind(sql: str) -> str:
    """A statement's kind, without its values: `INSERT INTO deals`, `UPDATE refreshes`, `COMMIT`."""
    words = re.sub(r"\s+", " ", sql.strip()).split(" ")
    if words[0].upper() in ("INSERT", "REPLACE"):
        return " ".join(words[:3]).split("(")[0]
    if words[0].upper() in ("UPDATE", "CREATE", "ALTER", "DROP"):
        return " ".join(words[:2])
    return words[0].upper()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--trace", required=True)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    trace = open(options.trace, "a", buffering=1)  # noqa: SIM115 (open until the process ends, or is killed)
    count = 0

    def on_statement(sql: str) -> None:
        nonlocal count
        if not WRITE.match(sql):
            return
        count += 1
        trace.write(f"{count}\t{kind(sql)}\n")
        if count == options.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(on_statement)
        return connection

    sqlite3.connect = traced_connect
    from salesintel.bot.launch import main as salesintel

    sys.argv = ["salesintel", *[a for a in options.args if a != "--"]]
    salesintel()


if __name__ == "__main__":
    main()

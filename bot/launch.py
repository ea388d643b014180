"""The `salesintel` command's entry point: imports the CLI with the cycle collector paused, runs it, and exits
without tearing the interpreter down.

Start-up is most of a short command's time, and about a fifth of importing is the collector walking the objects
the imports create (see `engine.collection`); the collector is on again before any command runs.

Tearing down is the other end: once a command has finished, Python would still free every module and every
object left (after a million-deal refresh, about 0.8 s of a 12 s run) only for the operating system to reclaim the
whole process an instant later. So when a command ends by exiting (click always does, on success and on errors
alike), the process ends right after every `atexit` handler has run and the standard streams are flushed: nothing a
command writes is left behind, since the store commits inside the command and files are closed by their `with`
blocks. Anything else that escapes the command (an interrupt, a bug) ends the process the usual way.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass

from engine.collection import cycle_collection_paused


@dataclass
class _Outcome:
    code: int | None = None
    """The exit status to end with at once; None to end the usual way."""


def main() -> None:
    outcome = _Outcome()
    # Registered before anything else can register a handler: handlers run last-registered first, so this one runs
    # after all the others (logging's flush, temporary files' clean-up).
    atexit.register(_end_now, outcome)
    with cycle_collection_paused():
        from bot.cli import main as cli
    try:
        cli(prog_name="salesintel")
    except SystemExit as stop:
        outcome.code = exit_status(stop.code)
        raise


def exit_status(code: object) -> int:
    """The status `sys.exit(code)` ends a process with: 0 for None, the number itself, 1 for anything else (a
    message, which Python has printed by the time the exit handlers run)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _end_now(outcome: _Outcome) -> None:
    if outcome.code is None:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it anyway
            pass
    os._exit(outcome.code)

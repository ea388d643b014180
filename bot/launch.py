"""The `salesintel` command's entry point: imports the CLI with the cycle collector paused, runs it, and spares the
interpreter's shutdown a last pass of the collector.

Start-up is most of a short command's time, and about a fifth of importing is the collector walking the objects
the imports create (see `engine.collection`); the collector is on again before any command runs.

Shutdown is the other end: once a command has finished, Python runs one more full collection over every object
still alive, which after a million-deal refresh took about 0.8 s of a 12 s run, only for the operating system to
reclaim the whole process an instant later. So when a command ends by exiting (click always does, on success and
on errors alike), every object left is frozen first (`gc.freeze`): shutdown then runs as usual (exit handlers,
flushing, modules torn down) except for that collection. Nothing depends on it: each command closes its store
when it ends (`bot.cli`), and files are closed by their `with` blocks. Anything else that escapes a command (an
interrupt, a bug) ends the process the usual way.
"""

from __future__ import annotations

import gc

from salesintel.engine.collection import cycle_collection_paused


def main() -> None:
    with cycle_collection_paused():
        from salesintel.bot.cli import main as cli
    try:
        cli(prog_name="salesintel")
    except SystemExit:
        gc.freeze()
        raise

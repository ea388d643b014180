"""The `salesintel` command's entry point: imports the CLI with the cycle collector paused, then runs it.

Start-up is most of a short command's time, and about a fifth of importing is the collector walking the objects
the imports create (see `engine.collection`); the collector is on again before any command runs.
"""

from __future__ import annotations

from engine.collection import cycle_collection_paused


def main() -> None:
    with cycle_collection_paused():
        from bot.cli import main as cli
    cli(prog_name="salesintel")

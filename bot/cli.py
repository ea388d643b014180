"""The `salesintel` command: parses arguments, calls the engine, prints. No logic of its own."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from bot.config import ConfigError, Settings, load_settings, store_path
from engine.ingest import IngestError, ParsedSnapshot, read_snapshot
from engine.store import Store


@click.group()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=lambda: os.environ.get("SALESINTEL_CONFIG", "config.yaml"), help="config.yaml to use")
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    """salesintel: deal risk and win-rate intelligence for sales teams."""
    try:
        ctx.obj = (load_settings(config_path), config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--layout", default=None, help="CRM layout name (default: from config, usually auto)")
@click.pass_obj
def ingest(obj, path: Path, layout: str | None) -> None:
    """Load a CRM snapshot CSV into the store; bad rows go to rejects with reasons."""
    settings, config_path = obj
    try:
        parsed = _read_with_progress(path, settings, layout)
    except IngestError as error:
        raise click.ClickException(str(error)) from error
    store = Store.open(store_path(settings, config_path))
    existing = store.snapshot_by_sha256(parsed.sha256)
    if existing:
        click.echo(f"{path}: already loaded as snapshot #{existing.id} at {existing.loaded_at:%Y-%m-%d %H:%M}")
        return
    now = datetime.now(timezone.utc)
    taken = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    snapshot = store.save_snapshot(parsed, taken, now)
    click.echo(f"snapshot #{snapshot.id} ({parsed.layout}): read {parsed.rows_read}, "
               f"loaded {snapshot.rows_loaded}, rejected {snapshot.rows_rejected}")
    for reason, count in parsed.top_reasons():
        click.echo(f"  {count:>6}  {reason}")


def _read_with_progress(path: Path, settings: Settings, layout: str | None) -> ParsedSnapshot:
    """Show a progress bar only on an interactive terminal, so logs and CI stay quiet."""
    if not (sys.stderr.isatty() and path.is_file()):
        return read_snapshot(path, settings.ingest, layout)
    with click.progressbar(length=path.stat().st_size, label=f"reading {path.name}", file=sys.stderr) as bar:
        return read_snapshot(path, settings.ingest, layout, progress=bar.update)

"""The `salesintel` command: parses arguments, calls the engine, prints. No logic of its own."""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import click

from alerts.pipeline_summary import render_pipeline_summary
from bot.config import ConfigError, Settings, load_settings, store_path
from engine.ingest import IngestError, ParsedSnapshot, read_snapshot
from engine.refresh import RefreshError, refresh
from engine.store import Store, StoreError

AS_OF = click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="date to compute as of, YYYY-MM-DD (default: when the snapshot was taken)")


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


def _open_store(settings: Settings, config_path: Path) -> Store:
    try:
        return Store.open(store_path(settings, config_path))
    except StoreError as error:
        raise click.ClickException(str(error)) from error


def _as_date(value: datetime | None) -> date | None:
    return value.date() if value else None


@main.command("refresh")
@AS_OF
@click.pass_obj
def refresh_command(obj, as_of: datetime | None) -> None:
    """Compute metrics for the newest snapshot as of a date and keep them in the store."""
    settings, config_path = obj
    store = _open_store(settings, config_path)
    try:
        result = refresh(store, settings.metrics, _as_date(as_of), datetime.now(timezone.utc))
    except RefreshError as error:
        raise click.ClickException(str(error)) from error
    metrics = result.metrics
    click.echo(f"refresh #{result.id} of snapshot #{result.snapshot_id} as of {result.as_of}: "
               f"{metrics['overall']['n']} closed deals, {metrics['open_pipeline']['count']} open; "
               f"{metrics['significant']} of {metrics['comparisons']} segment comparisons significant")


@main.command()
@AS_OF
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
@click.option("--all", "show_all", is_flag=True, help="list every segment, not only the extremes")
@click.pass_obj
def metrics(obj, as_of: datetime | None, as_json: bool, show_all: bool) -> None:
    """Print the pipeline summary of the latest refresh (for --as-of, the latest refresh of that date)."""
    settings, config_path = obj
    store = _open_store(settings, config_path)
    result = store.latest_refresh(_as_date(as_of))
    if result is None:
        when = f" as of {as_of:%Y-%m-%d}" if as_of else ""
        raise click.ClickException(f"no refresh{when} yet: run `salesintel refresh{' --as-of ' + f'{as_of:%Y-%m-%d}' if as_of else ''}` first")
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2))
    else:
        click.echo(render_pipeline_summary(result.metrics, show_all), nl=False)

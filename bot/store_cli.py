"""`salesintel migrate` and `salesintel copy-store`: bringing a store's schema up to date, and moving a store from
SQLite to PostgreSQL (or back)."""

from __future__ import annotations

import json
import sys

import click

from salesintel.bot.config import store_target
from salesintel.engine.store import Store, StoreError
from salesintel.engine.store.connections import StoreTarget


def register(main: click.Group) -> None:
    main.add_command(migrate)
    main.add_command(copy_store_command)


@click.command()
@click.option("--check", is_flag=True, help="only say whether the store needs migrating (exit 1 if it does)")
@click.option("--json", "as_json", is_flag=True, help="print the versions as JSON")
@click.pass_obj
def migrate(obj, check: bool, as_json: bool) -> None:
    """Bring the store's schema up to this release's version (every command and `run` also do this when they
    open the store; run it once, before starting upgraded replicas of a shared PostgreSQL store)."""
    target = store_target(obj.settings, obj.config_path)
    try:
        before, latest = Store.versions(target)
        if before > latest:
            raise StoreError(f"{target}: schema version {before} is newer than this salesintel knows ({latest})")
        if not check and before < latest:
            Store.open(target).close()
        after = before if check else latest
    except StoreError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps({"store": str(target), "before": before, "after": after, "latest": latest}))
    elif before == latest:
        click.echo(f"{target}: schema version {latest}, up to date")
    elif check:
        click.echo(f"{target}: schema version {before}, this release needs {latest}: run `salesintel migrate`")
    else:
        click.echo(f"{target}: schema version {before} -> {latest} ({latest - before} steps)")
    if check and before < latest:
        sys.exit(1)


@click.command("copy-store")
@click.argument("destination")
@click.option("--json", "as_json", is_flag=True, help="print the rows copied as JSON")
@click.pass_obj
def copy_store_command(obj, destination: str, as_json: bool) -> None:
    """Copy the configured store, whole, into a new store at DESTINATION (a postgresql:// URL or a SQLite path).

    The destination is created and migrated if needed and must hold no snapshots or alerts. Stop the service
    first (or copy a backup): what it writes during the copy is not carried over. Then point the service at the
    destination (store.url or SALESINTEL_DATABASE_URL)."""
    from salesintel.engine.store.copy import copy_store

    source_target = store_target(obj.settings, obj.config_path)
    try:
        destination_target = StoreTarget.parse(destination)
        if str(destination_target) == str(source_target):
            raise StoreError("the destination is the configured store itself")
        source, target = Store.open(source_target), Store.open(destination_target)
    except StoreError as error:
        raise click.ClickException(str(error)) from error
    try:
        shown = {}

        def progress(table: str, rows: int) -> None:
            if not as_json and sys.stderr.isatty() and rows - shown.get(table, 0) >= 100_000:
                shown[table] = rows
                click.echo(f"  {table}: {rows:,} rows…", err=True)

        copied = copy_store(source, target, progress)
    except StoreError as error:
        raise click.ClickException(str(error)) from error
    finally:
        source.close()
        target.close()
    if as_json:
        click.echo(json.dumps({"from": str(source_target), "to": str(destination_target), "rows": copied}))
        return
    click.echo(f"copied {source_target} -> {destination_target}")
    for table, rows in copied.items():
        if rows:
            click.echo(f"  {rows:>10,}  {table}")

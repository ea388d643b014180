"""The `salesintel` command: parses arguments, calls the engine, prints. No logic of its own."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from salesintel.bot.alerts_cli import alert_environment
from salesintel.bot.alerts_cli import register as register_alert_commands
from salesintel.bot.config import (
    ConfigError,
    Credentials,
    Invocation,
    Settings,
    default_config_text,
    load_default_settings,
    load_settings,
    store_target,
    warehouse_source,
)
from salesintel.bot.store_cli import register as register_store_commands
from salesintel.engine.ingest import IngestError, ParsedSnapshot, read_snapshot
from salesintel.engine.store import Store, StoreError

if TYPE_CHECKING:
    from salesintel.engine.refresh import EngineSettings

# Commands import the heavier parts (scikit-learn, scipy, Slack SDK, Jinja) when they run, so that quick
# commands such as `ingest` start fast.

AS_OF = click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="date to compute as of, YYYY-MM-DD (default: when the snapshot was taken)",
)


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("SALESINTEL_CONFIG"),
    help="config.yaml to use (default: ./config.yaml if there is one, else the built-in defaults)",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """salesintel: deal risk and win-rate intelligence for sales teams."""
    if ctx.invoked_subcommand == "init":
        return
    try:
        if config_path is None and not Path("config.yaml").exists():
            click.echo(
                "No config.yaml here: using the built-in defaults (`salesintel init` writes them to edit).", err=True
            )
            # Relative paths in the defaults (the store's) are taken from the current folder.
            ctx.obj = Invocation(load_default_settings(), Path.cwd() / "config.yaml", Credentials.from_environment())
            return
        config_path = config_path or Path("config.yaml")
        ctx.obj = Invocation(load_settings(config_path), config_path, Credentials.from_environment())
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default="config.yaml")
@click.option("--force", is_flag=True, help="overwrite the file if it exists")
def init(path: Path, force: bool) -> None:
    """Write the built-in configuration to config.yaml (or PATH), to edit."""
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; `salesintel init --force` overwrites it")
    path.write_text(default_config_text())
    click.echo(f"wrote {path}: map your CRM export's columns under ingest.layouts, then `salesintel ingest FILE.csv`")


@main.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("--layout", default=None, help="CRM layout name (default: from config, usually auto)")
@click.option("--sample", is_flag=True, help="load the sample export shipped with salesintel (5,000 deals) instead")
@click.option("--warehouse", is_flag=True, help="run the configured warehouse query (ingest.warehouse) instead")
@click.option(
    "--accept",
    is_flag=True,
    help="use this snapshot even though it fails the checks against the previous one (or accept a held one)",
)
@click.pass_obj
def ingest(obj, path: Path | None, layout: str | None, sample: bool, warehouse: bool, accept: bool) -> None:
    """Load a CRM snapshot CSV (or the warehouse query's result) into the store; bad rows go to rejects with
    reasons.

    A snapshot that fails the checks against the previous one (every row rejected; far fewer deals or far less
    open pipeline, see ingest.max_drop_share; columns gone) is stored but not used, exits 1 and raises an ops alert,
    unless --accept is given."""
    from salesintel.engine.snapshot_guard import save_guarded

    settings, config_path = obj.settings, obj.config_path
    if (path is not None) + sample + warehouse != 1:
        raise click.UsageError(
            "give one CSV export to load, --sample for the sample shipped with salesintel, or --warehouse"
        )
    if sample:
        path = Path(str(resources.files("salesintel").joinpath("skygeni_sales_data.csv")))
    source = None
    try:
        if warehouse:
            source = _warehouse(settings, config_path, layout)
            if accept:  # the held result someone reviewed, never a fresh pull nobody has seen
                _accept_held_warehouse_snapshot(_open_store(settings, config_path), source)
                return
            parsed = _read_warehouse_with_progress(source, settings)
        else:
            parsed = _read_with_progress(path, settings, layout)
    except IngestError as error:
        raise click.ClickException(str(error)) from error
    shown = path if source is None else f"the {source}"
    again = f"salesintel ingest {path} --accept" if source is None else "salesintel ingest --warehouse --accept"
    store = _open_store(settings, config_path)
    existing = store.snapshot_by_sha256(parsed.sha256)
    if existing and not existing.promoted:
        if accept:
            store.promote_snapshot(existing.id)
            click.echo(f"{shown}: snapshot #{existing.id} accepted (it was held: {existing.held_reason})")
            return
        raise click.ClickException(
            f"{shown}: already loaded as snapshot #{existing.id}, held and not used: {existing.held_reason}. "
            f"If this export is right, run `{again}`"
        )
    if existing:
        click.echo(f"{shown}: already loaded as snapshot #{existing.id} at {existing.loaded_at:%Y-%m-%d %H:%M}")
        return
    now = datetime.now(UTC)
    taken = now if source is not None else datetime.fromtimestamp(path.stat().st_mtime, UTC)
    saved = save_guarded(store, parsed, taken, now, settings.ingest, accept)
    snapshot, problems, previous = saved.snapshot, saved.problems, saved.previous
    click.echo(
        f"snapshot #{snapshot.id} ({parsed.layout}): read {parsed.rows_read}, "
        f"loaded {snapshot.rows_loaded}, rejected {snapshot.rows_rejected}"
    )
    for reason, count in parsed.top_reasons():
        click.echo(f"  {count:>6}  {reason}")
    for absent in parsed.absent:
        click.echo(f"  absent  {absent}")
    if problems and accept:
        click.echo(f"  accepted although {'; '.join(problems)}")
    if not snapshot.promoted:
        from salesintel.alerts.runs import held_snapshot_alert

        held_snapshot_alert(alert_environment(settings, store), saved, path if source is None else str(source), now)
        kept = f"refreshes keep using snapshot #{previous.id}" if previous else "no snapshot is in use yet"
        raise click.ClickException(
            f"snapshot #{snapshot.id} is stored but not used: {snapshot.held_reason}; {kept}. "
            f"If this export is right, run `{again}`"
        )


def _share_metrics_across_workers() -> None:
    """prometheus-client's multiprocess mode for `run --workers N` (see `bot.metrics.ServiceMetrics`): a new folder
    the workers inherit through the environment, removed when this, the first process, exits. Set before anything
    imports prometheus-client, which reads it once."""
    import atexit
    import shutil
    import tempfile

    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the workers' metrics folder was set")
    folder = tempfile.mkdtemp(prefix="salesintel-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


def _accept_held_warehouse_snapshot(store: Store, source) -> None:
    """`ingest --warehouse --accept`: promote the newest held snapshot the warehouse gave. Pulling again instead
    would accept whatever the live warehouse holds now, unchecked: not the result the ops alert described."""
    held = store.latest_held_snapshot(str(source))
    if held is None:
        raise click.ClickException(
            f"no held snapshot from the {source} to accept (`salesintel ingest --warehouse` loads its current result)"
        )
    store.promote_snapshot(held.id)
    click.echo(f"the {source}: snapshot #{held.id} accepted (it was held: {held.held_reason})")


def _warehouse(settings: Settings, config_path: Path, layout: str | None):
    from dataclasses import replace

    try:
        source = warehouse_source(settings, config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if source is None:
        raise click.UsageError("no warehouse configured: set ingest.warehouse.query and SALESINTEL_WAREHOUSE_URL")
    return replace(source, layout=layout) if layout else source


def _read_warehouse_with_progress(source, settings: Settings) -> ParsedSnapshot:
    """Rows read so far on an interactive terminal (a query's size is not known up front)."""
    from salesintel.engine.warehouse import read_warehouse

    if not sys.stderr.isatty():
        return read_warehouse(source, settings.ingest)
    seen = [0]

    def progress(rows: int) -> None:
        seen[0] += rows
        click.echo(f"\r{source}: {seen[0]:,} rows read", err=True, nl=False)

    try:
        return read_warehouse(source, settings.ingest, progress)
    finally:
        click.echo("", err=True)


def _read_with_progress(path: Path, settings: Settings, layout: str | None) -> ParsedSnapshot:
    """Show a progress bar only on an interactive terminal, so logs and CI stay quiet."""
    if not (sys.stderr.isatty() and path.is_file()):
        return read_snapshot(path, settings.ingest, layout)
    with click.progressbar(length=path.stat().st_size, label=f"reading {path.name}", file=sys.stderr) as bar:
        return read_snapshot(path, settings.ingest, layout, progress=bar.update)


def _open_store(settings: Settings, config_path: Path) -> Store:
    """The command's store: opened once however many steps ask for it, and closed when the command ends (closing
    checkpoints SQLite's write-ahead log into the store file, so the file alone holds everything the command wrote
    and can be copied as it is)."""
    context = click.get_current_context()
    store = context.meta.get(_STORE)
    if store is None:
        try:
            store = context.meta[_STORE] = Store.open(store_target(settings, config_path))
        except StoreError as error:
            raise click.ClickException(str(error)) from error
        context.call_on_close(store.close)
    return store


_STORE = "salesintel.store"
"""Where a command keeps its open store (click's per-invocation `meta`)."""


def _engine(settings: Settings) -> EngineSettings:
    from salesintel.engine.refresh import EngineSettings

    return EngineSettings(settings.metrics, settings.model, settings.anomalies, settings.alerts.realtime.risk_rule)


def _as_date(value: datetime | None) -> date | None:
    return value.date() if value else None


@main.command("refresh")
@AS_OF
@click.option("--timings", is_flag=True, help="print each step's duration on stderr as it finishes")
@click.pass_obj
def refresh_command(obj, as_of: datetime | None, timings: bool) -> None:
    """Compute metrics for the newest snapshot as of a date and keep them in the store."""
    from salesintel.engine.collection import cycle_collection_paused

    with cycle_collection_paused():  # importing the engine creates a million objects (see engine.collection)
        from salesintel.engine.refresh import RefreshError, refresh
    settings, config_path = obj.settings, obj.config_path
    store = _open_store(settings, config_path)

    def progress(step: str, seconds: float) -> None:
        click.echo(f"  {step}: {seconds:.2f} s", err=True)

    try:
        result = refresh(store, _engine(settings), _as_date(as_of), datetime.now(UTC), progress if timings else None)
    except RefreshError as error:
        raise click.ClickException(str(error)) from error
    from salesintel.alerts.render import render_text

    click.echo(render_text("refresh.txt.j2", r=result, m=result.metrics), nl=False)


@main.command()
@AS_OF
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
@click.option("--all", "show_all", is_flag=True, help="list every segment, not only the extremes")
@click.pass_obj
def metrics(obj, as_of: datetime | None, as_json: bool, show_all: bool) -> None:
    """Print the pipeline summary of the latest refresh (for --as-of, the latest refresh of that date)."""
    from salesintel.alerts.pipeline_summary import render_pipeline_summary

    settings, config_path = obj.settings, obj.config_path
    store = _open_store(settings, config_path)
    result = store.latest_refresh(_as_date(as_of))
    if result is None:
        when = f" as of {as_of:%Y-%m-%d}" if as_of else ""
        raise click.ClickException(
            f"no refresh{when} yet: run `salesintel refresh{' --as-of ' + f'{as_of:%Y-%m-%d}' if as_of else ''}` first"
        )
    if as_json:
        click.echo(json.dumps(result.metrics.to_json(), indent=2))
    else:
        click.echo(render_pipeline_summary(result.metrics, show_all), nl=False)


@main.command()
@click.argument("deal_id")
@AS_OF
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
@click.pass_obj
def risk(obj, deal_id: str, as_of: datetime | None, as_json: bool) -> None:
    """Risk, P(win) and reasons for one open deal (computes the refresh for --as-of if there is none)."""
    from salesintel.alerts.deal_answer import deal_content
    from salesintel.alerts.render import render_text
    from salesintel.engine.lookup import DealLookupError, look_up

    settings, config_path = obj.settings, obj.config_path
    result = _refresh_for(obj, as_of)
    store = _open_store(settings, config_path)
    try:
        answer = look_up(store, result, deal_id)
    except DealLookupError as error:
        raise click.ClickException(str(error)) from error
    content = deal_content(store, result, answer)  # what /deal-risk says too
    model, rule = content["model"], content["rule"]
    if as_json:
        payload = {
            **answer.score.to_json(),
            "at_risk": content["at_risk"],
            "risk_rule": {k: rule.get(k) for k in ("threshold", "active", "reason")},
            "as_of": result.as_of.isoformat(),
            "snapshot_id": answer.snapshot.id,
            "model_version": model.get("version"),
            "model_has_skill": model.get("has_skill"),
            "model_verdict": model.get("verdict"),
            "days_in_stage": content["stage_days"],
            "do_next": content["actions"],
        }
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render_text("deal_risk.txt.j2", a=answer, **content), nl=False)


@main.command()
@click.option("--keep", type=int, default=None, help="snapshots to keep (default: store.keep_snapshots, 10)")
@click.option("--no-vacuum", is_flag=True, help="skip giving the space back to the file system")
@click.pass_obj
def prune(obj, keep: int | None, no_vacuum: bool) -> None:
    """Delete old snapshots (with their refreshes, scores and models), and delivered messages and run records older
    than store.keep_days; then vacuum the file. Alert state is kept."""
    settings, config_path = obj.settings, obj.config_path
    store = _open_store(settings, config_path)
    before = store.size_bytes()
    keep_since = datetime.now(UTC) - timedelta(days=settings.store.keep_days)
    deleted = store.prune(keep or settings.store.keep_snapshots, keep_since)
    if not no_vacuum:
        store.vacuum()
    after = store.size_bytes()
    summary = ", ".join(f"{table} {n:,}" for table, n in deleted.items()) or "nothing"
    click.echo(f"deleted {summary}; store {before / 2**20:,.1f} MiB -> {after / 2**20:,.1f} MiB")


@main.command("train")
@AS_OF
@click.pass_obj
def train_command(obj, as_of: datetime | None) -> None:
    """Train a new model version as of a date; the next refresh for that date uses it."""
    from salesintel.engine.refresh import RefreshError, train_model

    settings, config_path = obj.settings, obj.config_path
    store = _open_store(settings, config_path)
    try:
        stored = train_model(store, _engine(settings), _as_date(as_of), datetime.now(UTC))
    except RefreshError as error:
        raise click.ClickException(str(error)) from error
    summary = stored.summary
    click.echo(
        f"model {stored.version} as of {stored.as_of}: {summary['deals']} deals "
        f"({summary['train_from']} to {summary['train_to']}), {summary['examples']} landmark examples"
    )
    click.echo(summary["verdict"])
    significant = [d for d in summary["drivers"] if d["status"] == "significant"]
    click.echo(f"{len(significant)} significant driver(s) of {len(summary['drivers'])}")
    for d in significant[:10]:
        click.echo(
            f"  {d['feature']} {d['level']} vs {d['reference']}: odds x{d['odds_ratio']:.2f} "
            f"(95% CI {d['low']:.2f}-{d['high']:.2f}, q={d['q_value']:.3g})"
        )


@main.command()
@click.option("--deals", "count", type=click.IntRange(1), required=True, help="how many deals to generate")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise", is_flag=True, help="no planted effects at all: pure noise")
@click.option("--decay", type=float, default=0.0, show_default=True, help="log-odds of winning lost per quarter")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default="2023-01-01", show_default=True)
@click.option(
    "--days", type=click.IntRange(30), default=540, show_default=True, help="days over which deals are created"
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="CSV to write (default synth-N-sS.csv)")
@click.option("--truth", type=click.Path(path_type=Path), default=None, help="also write each deal's true P(win)")
@click.option(
    "--scenario",
    type=click.Choice(["clean", "fields", "messy"]),
    default="clean",
    show_default=True,
    help="fields: extra CRM fields with planted effects and an interaction; messy: short and long cycles, "
    "extra fields, leaky columns, zombies, data ending at --days",
)
def synth(
    count: int,
    seed: int,
    noise: bool,
    decay: float,
    start: datetime,
    days: int,
    out: Path | None,
    truth: Path | None,
    scenario: str,
) -> None:
    """Write a synthetic CRM snapshot with planted effects of known size (SkyGeni layout, or a messy export)."""
    from salesintel.engine.synth import MessySpec, SynthSpec, generate

    if scenario == "messy":
        _write_messy(MessySpec(deals=count, seed=seed, start=start.date(), days=days, noise=noise), out, truth)
        return
    spec = SynthSpec(
        deals=count,
        seed=seed,
        start=start.date(),
        days=days,
        noise=noise,
        decay_per_quarter=decay,
        extra_fields=scenario == "fields",
    )
    data = generate(spec)
    out = out or Path(f"synth-{count}-s{seed}{'-noise' if noise else ''}{'-fields' if spec.extra_fields else ''}.csv")
    data.crm.to_csv(out, index=False)
    if truth:
        data.truth.to_csv(truth, index=False)
    effects = "none (pure noise)" if noise else ", ".join(f"{f}={lvl} {v:+.1f}" for (f, lvl), v in spec.effects.items())
    click.echo(f"wrote {count} deals ({int(data.truth['open'].sum())} open at {spec.snapshot_date}) to {out}")
    click.echo(f"planted log-odds effects: {effects}; lost deals run longer: {not noise}; decay per quarter {decay}")
    if spec.extra_fields:
        import yaml

        from salesintel.engine.synth import CONTACTS_EFFECT, FIELD_EFFECTS, INTERACTION_EFFECT, fields_layout

        planted = (
            "none (pure noise)"
            if noise
            else ", ".join(
                [f"{f}={lvl} {v:+.1f}" for (f, lvl), v in FIELD_EFFECTS.items()]
                + [
                    f"contacts {CONTACTS_EFFECT:+.2f} per contact",
                    f"competitor=Globex with company_size=Enterprise {INTERACTION_EFFECT:+.1f} (an interaction)",
                ]
            )
        )
        click.echo(f"extra fields' planted effects: {planted}")
        click.echo("read it with this layout (config.yaml, under ingest.layouts; then `ingest --layout fields`):")
        click.echo(yaml.safe_dump({"fields": fields_layout()}, sort_keys=False, allow_unicode=True))


def _write_messy(spec, out: Path | None, truth: Path | None) -> None:
    import yaml

    from salesintel.engine.synth import generate_messy, messy_layout

    data = generate_messy(spec)
    out = out or Path(f"messy-{spec.deals}-s{spec.seed}{'-noise' if spec.noise else ''}.csv")
    data.crm.to_csv(out, index=False)
    if truth:
        data.truth.to_csv(truth, index=False)
    click.echo(
        f"wrote {spec.deals} deals ({int(data.truth['open'].sum())} open, {int(data.truth['zombie'].sum())} of "
        f"them zombies) to {out}; the export ends on {spec.data_end}"
    )
    click.echo("read it with this layout (config.yaml, under ingest.layouts; then `ingest --layout messy`):")
    click.echo(yaml.safe_dump({"messy": messy_layout()}, sort_keys=False, allow_unicode=True))


@main.command("backtest")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), required=True, help="first (or only) date")
@click.option("--to", "until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="last date of a range")
@click.option("--every", type=click.IntRange(1), default=30, show_default=True, help="days between dates of a range")
@click.option("--json", "as_json", is_flag=True, help="print the reports as JSON")
@click.pass_obj
def backtest_command(obj, as_of: datetime, until: datetime | None, every: int, as_json: bool) -> None:
    """Score the pipeline open at past date(s), then compare with what happened (from the newest snapshot)."""
    from salesintel.alerts.render import render_text
    from salesintel.engine.backtest import backtest

    settings, config_path = obj.settings, obj.config_path
    store = _open_store(settings, config_path)
    snapshot = store.latest_snapshot()
    if snapshot is None:
        raise click.ClickException("the store holds no snapshot yet: run `salesintel ingest PATH` first")
    deals = store.deals(snapshot.id)
    dates = [as_of.date()]
    while until and dates[-1] + timedelta(days=every) <= until.date():
        dates.append(dates[-1] + timedelta(days=every))
    reports = []
    for day in dates:
        if day >= snapshot.taken_at.date():
            raise click.ClickException(
                f"{day} is not before the snapshot ({snapshot.taken_at:%Y-%m-%d}): "
                "there are no later outcomes to compare with"
            )
        reports.append(backtest(deals, snapshot, day, _engine(settings), settings.alerts.realtime.min_amount))
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    else:
        click.echo(render_text("backtest.txt.j2", reports=reports), nl=False)


@main.command("models")
@click.pass_obj
def models_command(obj) -> None:
    """List stored model versions: training window, size and holdout skill."""
    settings, config_path = obj.settings, obj.config_path
    store = _open_store(settings, config_path)
    rows = store.models()
    if not rows:
        click.echo("no model yet: `salesintel refresh` or `salesintel train` makes one")
    for row in rows:
        summary = store.model(row["id"]).summary
        auc = summary["evaluation"]["auc"]
        click.echo(
            f"v{row['id']}  as of {row['as_of']}  snapshot #{row['snapshot_id']}  {row['deals']:,} deals "
            f"({row['train_from']} to {row['train_to']})  {summary.get('family') or 'logistic regression'}"
            f"  holdout AUC {auc['auc']:.3f} "
            f"[{auc['low']:.3f}, {auc['high']:.3f}]  Brier skill {summary['evaluation']['brier_skill']:+.1%}  "
            f"{'refused (likely leak)' if summary.get('refused') else 'has skill' if row['has_skill'] else 'no skill'}"
        )


def _refresh_for(obj, as_of: datetime | None):
    """The refresh for `as_of` (computed if missing), or the latest one."""
    from salesintel.engine.refresh import RefreshError, refresh

    settings, config_path = obj.settings, obj.config_path
    store = _open_store(settings, config_path)
    result = store.latest_refresh(_as_date(as_of))
    if result is None:
        click.echo(f"no refresh{' as of ' + f'{as_of:%Y-%m-%d}' if as_of else ''} yet: computing one...", err=True)
        try:
            result = refresh(store, _engine(settings), _as_date(as_of), datetime.now(UTC))
        except RefreshError as error:
            raise click.ClickException(str(error)) from error
    return result


register_alert_commands(main, _refresh_for, _open_store)
register_store_commands(main)


@main.command("run")
@click.option("--port", type=int, default=3000, show_default=True, help="HTTP port for /slack/events and /healthz")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="pin the engine's date (replay history); the scheduler still runs on the wall clock",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="SALESINTEL_WORKERS",
    help="processes serving the port (HTTP mode; one leads the scheduler): one process uses one core",
)
@click.pass_context
def run_command(ctx: click.Context, port: int, as_of: datetime | None, workers: int) -> None:
    """The service: Slack bot (HTTP, Socket Mode, or terminal without credentials) plus the alert scheduler.

    In terminal mode, `--port` given explicitly also serves /healthz, /metrics and the web dashboard there
    (`/salesintel dashboard` prints a sign-in link)."""
    obj = ctx.obj
    serve_in_terminal = ctx.get_parameter_source("port") is not click.core.ParameterSource.DEFAULT
    if workers > 1 and obj.credentials.mode != "http":
        raise click.UsageError(f"--workers {workers} needs HTTP mode (SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _share_metrics_across_workers()  # before `service` imports prometheus-client
    from salesintel.bot import logs, service

    settings, config_path = obj.settings, obj.config_path
    logs.configure(obj.credentials.secrets)
    try:
        warehouse_source(settings, config_path)  # a broken warehouse setting stops the start, not a later pull
        store_target(settings, config_path)
    except (ConfigError, StoreError) as error:
        raise click.ClickException(str(error)) from error
    sys.exit(
        service.run(
            settings,
            config_path,
            obj.credentials,
            port,
            _as_date(as_of),
            workers=workers,
            serve_in_terminal=serve_in_terminal,
        )
    )

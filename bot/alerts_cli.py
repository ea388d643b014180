"""`salesintel report`, `salesintel alerts ...` and `salesintel deliver`: the alert engine from the terminal.

The same operations the Slack buttons perform (acknowledge, snooze) are here, with the same idempotency.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from salesintel.alerts.ledger import AlertLedger, AlertNotFound
from salesintel.bot.config import Settings
from salesintel.engine.store import Store


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def alert_environment(settings: Settings, store: Store):
    from salesintel.alerts.runs import AlertEnvironment

    return AlertEnvironment(store, settings.alerts, ZoneInfo(settings.timezone))


def print_message(target: str, kind: str, text: str, blocks: list[dict]) -> None:
    from salesintel.alerts.delivery import blocks_as_text

    click.echo(f"{'─' * 72}\n→ {target} [{kind}]")
    click.echo(blocks_as_text(blocks, text))


def render_report(env, kind: str, refresh, charts_dir: Path | None = None) -> None:
    """Render one run of `kind` to the terminal; nothing is recorded or sent. A weekly or monthly report's charts
    are listed with their alt text, and written as PNGs into `charts_dir` when given."""
    from salesintel.alerts.runs import realtime_preview, report_with_charts

    now = datetime.now(UTC)
    if kind == "realtime":
        preview = realtime_preview(env, now, refresh)
        click.echo(
            f"Real-time alerts as of {refresh.as_of}: deal at risk (amount > {env.settings.realtime.min_amount:,.0f}"
            f" and at risk) or stalled; at most {preview.cap} per recipient per day, the rest roll into the next "
            f"daily digest."
        )
        click.echo(preview.rule.get("reason", "No risk rule in this refresh."))
        if not preview.messages:
            click.echo(
                f"no deal qualifies for a real-time alert as of {refresh.as_of} (the stalled-deal rule needs "
                f"the stage at that date)"
            )
        for recipients, message in preview.messages:
            print_message(recipients, "realtime", message.text, message.blocks)
        if preview.folded:
            over = ", ".join(f"{target.split(':', 1)[1]}: {count}" for target, count in sorted(preview.folded.items()))
            click.echo(f"{'─' * 72}\nover the daily cap of {preview.cap} (folded into the next daily digest): {over}")
        return
    message, _ = report_with_charts(kind, env, now, refresh)
    print_message(env.settings.routing.channels[kind], kind, message.text, message.blocks)
    if charts_dir is not None:
        charts_dir.mkdir(parents=True, exist_ok=True)
    for chart in message.files:
        saved = ""
        if charts_dir is not None:
            (charts_dir / f"{chart.name}.png").write_bytes(chart.png)
            saved = f" → {charts_dir / f'{chart.name}.png'}"
        click.echo(f"[chart: {chart.title}]{saved}\n  {chart.alt}")


def register(main: click.Group, open_refresh, open_store) -> None:
    """Add the alert commands to the `salesintel` group; `open_refresh(obj, as_of)` returns a Refresh and
    `open_store(settings, config_path)` the command's store."""

    @main.command()
    @click.argument("kind", type=click.Choice(["realtime", "daily", "weekly", "monthly"]))
    @click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None)
    @click.option(
        "--charts",
        "charts_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="write a weekly or monthly report's charts into this folder as PNGs",
    )
    @click.pass_obj
    def report(obj, kind: str, as_of: datetime | None, charts_dir: Path | None) -> None:
        """Render one alert run to the terminal without sending or recording anything (a weekly or monthly
        report's charts: titles and alt text, and PNGs with --charts DIR)."""
        from salesintel.alerts.runs import NothingToReport

        settings, config_path = obj.settings, obj.config_path
        refresh = open_refresh(obj, as_of)
        try:
            render_report(alert_environment(settings, open_store(settings, config_path)), kind, refresh, charts_dir)
        except NothingToReport as error:
            raise click.ClickException(str(error)) from error

    @main.group(invoke_without_command=True)
    @click.option("--all", "show_all", is_flag=True, help="include resolved alerts")
    @click.pass_context
    def alerts(ctx: click.Context, show_all: bool) -> None:
        """List alert state; `alerts ack ID`, `alerts snooze ID` act on one alert."""
        if ctx.invoked_subcommand:
            return
        settings, config_path = ctx.obj.settings, ctx.obj.config_path
        ledger = AlertLedger(alert_environment(settings, open_store(settings, config_path)).store)
        rows = ledger.listing(None if show_all else ["open", "acknowledged", "snoozed"])
        if not rows:
            click.echo("no alerts" if show_all else "no open alerts (--all shows resolved ones)")
        for row in rows:
            extra = {
                "acknowledged": f" by {row.acked_by} at {_iso(row.acked_at)}",
                "snoozed": f" until {_iso(row.snoozed_until)}",
                "resolved": f": {row.resolution}",
            }.get(row.state, "")
            control = " [control group: not sent]" if row.control else ""
            click.echo(
                f"#{row.id:<5} {row.rule:<20} {row.deal_id:<10} episode {row.episode}  "
                f"risk {row.risk:.0%}  sent {row.sends}x  {row.state}{extra}{control}"
            )

    @alerts.command("ack")
    @click.argument("alert_id", type=int)
    @click.option("--by", "user", default=lambda: os.environ.get("USER", "cli"), help="who acknowledges")
    @click.pass_obj
    def ack(obj, alert_id: int, user: str) -> None:
        """Acknowledge: no more repeats of this alert's episode."""
        settings, config_path = obj.settings, obj.config_path
        ledger = AlertLedger(alert_environment(settings, open_store(settings, config_path)).store)
        try:
            change = ledger.acknowledge(alert_id, user, datetime.now(UTC))
        except AlertNotFound as error:
            raise click.ClickException(str(error)) from error
        state = change.alert
        click.echo(
            f"alert #{alert_id} acknowledged by {state.acked_by} at {_iso(state.acked_at)}"
            if change.changed
            else f"alert #{alert_id} is already {state.state}: nothing changed"
        )

    @alerts.command("snooze")
    @click.argument("alert_id", type=int)
    @click.option("--for", "duration", type=click.Choice(["1d", "1w"]), default=None)
    @click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="snooze until this date")
    @click.option("--by", "user", default=lambda: os.environ.get("USER", "cli"))
    @click.pass_obj
    def snooze(obj, alert_id: int, duration: str | None, until: datetime | None, user: str) -> None:
        """Snooze: silent until then, then re-evaluated."""
        settings, config_path = obj.settings, obj.config_path
        if bool(duration) == bool(until):
            raise click.UsageError("give exactly one of --for 1d|1w or --until YYYY-MM-DD")
        now = datetime.now(UTC)
        tz = ZoneInfo(settings.timezone)
        end = (
            now + (timedelta(days=1) if duration == "1d" else timedelta(weeks=1))
            if duration
            else until.replace(tzinfo=tz)
        )
        ledger = AlertLedger(alert_environment(settings, open_store(settings, config_path)).store)
        try:
            change = ledger.snooze(alert_id, end, user, now)
        except AlertNotFound as error:
            raise click.ClickException(str(error)) from error
        click.echo(
            f"alert #{alert_id} snoozed until {end:%Y-%m-%d %H:%M %Z}"
            if change.changed
            else f"alert #{alert_id} is {change.alert.state}: nothing changed"
        )

    @alerts.command("thresholds")
    @click.option("--tune", is_flag=True, help="decide now, as the scheduled tuning job would (and act on it)")
    @click.option("--reset", is_flag=True, help="back to the rule's own threshold (recorded and announced)")
    @click.option("--json", "as_json", is_flag=True, help="the changes as JSON")
    @click.pass_obj
    def thresholds(obj, tune: bool, reset: bool, as_json: bool) -> None:
        """Changes feedback made to the real-time alert threshold, with their reasons (alerts.realtime.tuning)."""
        import json

        from salesintel.alerts.rules import HIGH_VALUE_AT_RISK
        from salesintel.alerts.runs import NothingToReport, latest_refresh
        from salesintel.alerts.tuning import record_change, threshold_words, tuning_run

        settings, config_path = obj.settings, obj.config_path
        env = alert_environment(settings, open_store(settings, config_path))
        now = datetime.now(UTC)
        try:
            if tune:
                click.echo(tuning_run(env, now))
            if reset:
                changes = env.store.alerts.threshold_changes(HIGH_VALUE_AT_RISK)
                if not changes or not changes[-1].threshold_offset:
                    click.echo("the threshold is the rule's own already: nothing to reset")
                else:
                    rule = latest_refresh(env.store).metrics.risk_rule
                    chosen = (rule.get("tuned") or {}).get("chosen_threshold", rule.get("threshold"))
                    user = os.environ.get("USER", "cli")
                    today = now.astimezone(env.timezone).date().isoformat()
                    evidence = {"by": user, "as_of": today}
                    record_change(env, now, 0.0, rule.get("threshold"), chosen, f"reset by {user}", evidence)
                    click.echo("reset: the rule's own threshold applies from the next refresh (announced)")
        except NothingToReport as error:
            raise click.ClickException(str(error)) from error
        changes = env.store.alerts.threshold_changes(HIGH_VALUE_AT_RISK)
        if as_json:
            rows = [
                {
                    "id": c.id,
                    "decided_at": c.decided_at.isoformat(),
                    "old_threshold": c.old_threshold,
                    "new_threshold": c.new_threshold,
                    "offset": c.threshold_offset,
                    "bounds": [c.min_threshold, c.max_threshold],
                    "reason": c.reason,
                    "evidence": c.evidence,
                }
                for c in changes
            ]
            click.echo(json.dumps(rows, indent=2, default=str))
            return
        if not changes:
            click.echo("no threshold changes: the real-time rule uses its own threshold")
        for c in changes:
            old, new = threshold_words(c.old_threshold), threshold_words(c.new_threshold)
            click.echo(
                f"#{c.id:<4} {c.decided_at:%Y-%m-%d %H:%M} {old} → {new} (offset {c.threshold_offset:+.2f}): {c.reason}"
            )

    @main.group(invoke_without_command=True)
    @click.pass_context
    def users(ctx: click.Context) -> None:
        """Slack users of reps and managers: from config (alerts.routing.users) and the store; `users set` adds one."""
        if ctx.invoked_subcommand:
            return
        settings, config_path = ctx.obj.settings, ctx.obj.config_path
        store = alert_environment(settings, open_store(settings, config_path)).store
        stored = store.slack_users()
        configured = {
            p: e.get("slack") or f"(email {e['email']})"
            for p, e in settings.alerts.routing.users.items()
            if e.get("slack") or e.get("email")
        }
        for person in sorted(set(stored) | set(configured)):
            source = "config" if person in configured and not configured[person].startswith("(") else "store"
            click.echo(f"{person:<14} {stored.get(person) or configured.get(person):<14} {source}")
        if not stored and not configured:
            click.echo("no Slack users known: add them under alerts.routing.users or with `salesintel users set`")

    @users.command("set")
    @click.argument("person")
    @click.argument("slack_id")
    @click.pass_obj
    def users_set(obj, person: str, slack_id: str) -> None:
        """Map a rep or manager id to a Slack user id, in the store (config entries still win)."""
        settings, config_path = obj.settings, obj.config_path
        store = alert_environment(settings, open_store(settings, config_path)).store
        store.save_slack_user(person, slack_id, None, datetime.now(UTC))
        click.echo(f"{person} → {slack_id}")

    @main.command("email-test")
    @click.argument("address")
    @click.option(
        "--report", "kind", type=click.Choice(["daily", "weekly", "monthly"]), default="daily", show_default=True
    )
    @click.pass_obj
    def email_test(obj, address: str, kind: str) -> None:
        """Send one report by email to ADDRESS now, straight through the configured SMTP server (not the outbox):
        checks alerts.email.smtp, STARTTLS, the login and how the digest looks."""
        from dataclasses import asdict

        from salesintel.alerts.delivery import PermanentError, TransientError
        from salesintel.alerts.email_delivery import EmailSender, message_id
        from salesintel.alerts.runs import NothingToReport, report_with_charts

        settings, config_path = obj.settings, obj.config_path
        env = alert_environment(settings, open_store(settings, config_path))
        now = datetime.now(UTC)
        try:
            message, _ = report_with_charts(kind, env, now)
        except NothingToReport as error:
            raise click.ClickException(str(error)) from error
        mid = message_id(0, f"email-test:{now.isoformat()}", settings.alerts.email.sender)
        smtp = settings.alerts.email.smtp
        try:
            sender = EmailSender(settings.alerts, obj.credentials.smtp_password)
            sender.deliver(address, message.text, message.blocks, [asdict(chart) for chart in message.files], mid)
        except (PermanentError, TransientError) as error:
            raise click.ClickException(f"not sent: {error}") from error
        how = ", ".join(
            part
            for part in ("STARTTLS" if smtp.starttls else "", f"as {smtp.username}" if smtp.username else "")
            if part
        )
        click.echo(f"sent the {kind} report to {address} via {smtp.host}:{smtp.port} ({how or 'plain'}): {mid}")

    @main.command()
    @click.option("--limit", type=int, default=None, help="stop after this many messages")
    @click.pass_obj
    def deliver(obj, limit: int | None) -> None:
        """Deliver queued messages: to Slack with SLACK_BOT_TOKEN (at SLACK_API_URL), else to this terminal.

        Takes the scheduler lease first, so it never delivers beside a running service (that one delivers already).
        Messages a crash left in flight are looked for in Slack by their metadata: found ones are not sent again."""
        credentials = obj.credentials
        from salesintel.alerts.clock import SystemClock
        from salesintel.alerts.delivery import Deliverer, SlackSender, TerminalSender, process_name, slack_client
        from salesintel.alerts.email_delivery import with_email
        from salesintel.alerts.leadership import Leadership
        from salesintel.alerts.outbox import Outbox

        settings, config_path = obj.settings, obj.config_path
        env = alert_environment(settings, open_store(settings, config_path))
        clock = SystemClock()
        lease = timedelta(seconds=settings.alerts.schedule.lease_seconds)
        leadership = Leadership(lambda: env.store, process_name(), lease, clock)
        if not leadership.renew()[0]:
            click.echo(f"waiting for the scheduler lease held by {leadership.current()}...", err=True)
            if not leadership.wait_to_lead(lease + timedelta(seconds=1)):
                raise click.ClickException(
                    f"{leadership.current()} holds the scheduler lease and delivers: nothing to do here"
                )
        try:
            if credentials.bot_token:
                client = slack_client(
                    credentials.bot_token, credentials.api_url, settings.alerts.delivery.request_timeout_seconds
                )
                sender = SlackSender(client, settings.alerts, env.store)
            else:
                sender = TerminalSender()
            sender = with_email(sender, settings.alerts, credentials.smtp_password)
            deliverer = Deliverer(env.store, sender, settings.alerts, clock, holder=leadership.holder)
            recovered = deliverer.recover_orphans()
            if any(recovered.values()):
                click.echo(
                    f"in flight at a crash: {recovered['found']} found in Slack (not sent again), "
                    f"{recovered['requeued']} not found (sending again)",
                    err=True,
                )
            sent = deliverer.deliver_due(limit=limit, should_stop=lambda: not leadership.keep())
        finally:
            leadership.release()
        pending = Outbox(env.store).statuses()
        click.echo(
            f"delivered {sent}; outbox now: {', '.join(f'{k} {v}' for k, v in sorted(pending.items())) or 'empty'}",
            err=True,
        )

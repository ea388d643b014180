"""One run of each job, as a plain function of (store, settings, now): what the scheduler calls.

A run reads the newest refresh, decides what to say (rules, episodes, caps, control group), renders it, and
writes alert state and outbox rows in one transaction. Delivery is a separate step (`alerts.delivery`), so a
crash between the two loses nothing: the message waits in the outbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from salesintel.alerts.episodes import HOLD_CONTROL, SEND_NEW, SEND_REPEAT, decide
from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.outbox import FOLDED, RESOLUTION_KIND, Outbox
from salesintel.alerts.render import Message, escape_mrkdwn, render_message
from salesintel.alerts.reports import (
    ReportInputs,
    control_comparison,
    daily_context,
    monthly_context,
    realtime_context,
    weekly_context,
)
from salesintel.alerts.routing import deal_recipients, report_target, slack_mentions
from salesintel.alerts.rules import (
    HIGH_VALUE_AT_RISK,
    Candidate,
    drift_problems,
    high_value_at_risk,
    stale_data,
    stalled,
)
from salesintel.alerts.settings import AlertsSettings
from salesintel.engine.snapshot_guard import GuardedSave
from salesintel.engine.store import Alert, Refresh, Store

log = logging.getLogger("salesintel.alerts")


class NothingToReport(Exception):
    """No refresh in the store yet."""


@dataclass(frozen=True)
class AlertEnvironment:
    store: Store
    settings: AlertsSettings
    timezone: ZoneInfo


FEEDBACK_DAYS = 30
"""The monthly report shows what recipients said of alerts over this many days."""


def gather_inputs(env: AlertEnvironment, refresh: Refresh, now: datetime) -> ReportInputs:
    store, settings = env.store, env.settings
    snapshot = store.snapshot(refresh.snapshot_id)
    as_of = refresh.as_of
    previous = store.refresh_on_or_before(as_of - timedelta(days=7))
    cached = store.slack_users()
    return ReportInputs(
        metrics=refresh.metrics,
        scores=store.scores(refresh.id),
        now=now,
        stale_warning=stale_data(snapshot.taken_at, now, settings),
        settings=settings,
        previous_metrics=previous.metrics if previous and previous.id != refresh.id else None,
        wins=store.closed_between(snapshot.id, as_of - timedelta(days=7), as_of, "Won"),
        folded=Outbox(store).folded(),
        alert_counts=AlertLedger(store).counts_since(now - timedelta(days=1)),
        control=control_group(store, refresh),
        feedback=AlertLedger(store).feedback_summary(now - timedelta(days=FEEDBACK_DAYS)),
        threshold_changes=[
            c for c in store.alerts.threshold_changes() if c.decided_at >= now - timedelta(days=FEEDBACK_DAYS)
        ],
        owners=slack_mentions(settings.routing, cached),
    )


def control_group(store: Store, refresh: Refresh) -> dict | None:
    """Win rates of the real-time rule's alerted and held-back deals closed by the refresh's date, and whether they
    differ (`reports.control_comparison`); None before any of them closed."""
    outcomes = store.outcomes(refresh.snapshot_id, refresh.as_of)
    alerted, held = AlertLedger(store).control_outcomes(HIGH_VALUE_AT_RISK, outcomes)
    return control_comparison(alerted, held, refresh.metrics.settings["min_sample"]) if alerted or held else None


def latest_refresh(store: Store) -> Refresh:
    refresh = store.latest_refresh()
    if refresh is None:
        raise NothingToReport("no refresh yet: run `salesintel refresh` first")
    return refresh


def realtime_run(env: AlertEnvironment, now: datetime, refresh: Refresh | None = None) -> dict:
    """Open, repeat or hold back alerts for qualifying deals; resolve episodes whose deal no longer qualifies."""
    store, settings = env.store, env.settings
    refresh = refresh or latest_refresh(store)
    inputs = gather_inputs(env, refresh, now)
    ledger, outbox = AlertLedger(store), Outbox(store)
    candidates = _candidates(env, refresh, inputs)
    counts = {"new": 0, "repeat": 0, "control": 0, "silent": 0, "resolved": 0, "folded": 0}
    day_start = datetime.combine(now.astimezone(env.timezone).date(), datetime.min.time(), env.timezone)
    with store.transaction():
        qualifying = set()
        for candidate in candidates:
            qualifying.add((candidate.rule, candidate.deal_id))
            alert = ledger.latest_episode(candidate.rule, candidate.deal_id)
            decision = decide(candidate, alert, now, settings.realtime, settings.control_share)
            counts[decision.action] += 1
            recipients = deal_recipients(candidate.score.sales_rep_id, settings.routing)
            if decision.action in (SEND_NEW, HOLD_CONTROL):
                alert = ledger.open_episode(
                    candidate.rule,
                    candidate.deal_id,
                    candidate.risk,
                    decision.action == HOLD_CONTROL,
                    recipients,
                    candidate.score.to_json(),
                    now,
                )
            elif decision.action == SEND_REPEAT:
                ledger.record_repeat(alert.id, candidate.risk, now)
            else:
                ledger.record_risk(alert.id, candidate.risk, now)
            if decision.action not in (SEND_NEW, SEND_REPEAT):
                continue
            message = render_message(
                "realtime",
                **realtime_context(candidate.score, candidate.rule, candidate.detail, alert.id, decision.why, inputs),
            )
            send_number = alert.sends + (1 if decision.action == SEND_REPEAT else 0)
            for target in recipients:
                over_cap = (
                    outbox.count_for_target_since("realtime", target, day_start) >= settings.daily_cap_per_recipient
                )
                status = FOLDED if over_cap else "pending"
                counts["folded"] += over_cap
                outbox.enqueue(
                    f"{alert.key}:{send_number}:{target}",
                    "realtime",
                    target,
                    message,
                    now,
                    alert_id=alert.id,
                    status=status,
                    note=decision.why,
                )
        for alert in ledger.active():
            if (alert.rule, alert.deal_id) not in qualifying:
                resolution = _resolution(alert, inputs)
                ledger.resolve(alert.id, resolution, now)
                counts["resolved"] += 1
                _queue_resolution(outbox, alert, resolution, now)
    log.info("realtime run", extra={"event": "realtime_run", "as_of": refresh.as_of.isoformat(), **counts})
    return counts


def _candidates(env: AlertEnvironment, refresh: Refresh, inputs: ReportInputs) -> list[Candidate]:
    """Every deal the real-time rules would speak about now (high value at risk, stalled), riskiest value first, so
    the per-recipient cap keeps what matters most."""
    stage_since = env.store.stage_since(refresh.snapshot_id, refresh.as_of)
    found = high_value_at_risk(inputs.scores, inputs.metrics.risk_rule, env.settings) + stalled(
        inputs.scores, stage_since, refresh.as_of, env.settings
    )
    return sorted(found, key=lambda c: (-c.risk * c.score.deal_amount, c.deal_id))


@dataclass(frozen=True)
class Preview:
    """What one real-time run would send, before alert state: each message with its recipients, and the cap."""

    messages: list[tuple[str, Message]]
    """(recipients, message) for every message within the per-recipient daily cap."""
    folded: dict[str, int]
    """recipient → messages over the cap, which would roll into the next daily digest."""
    cap: int
    rule: dict


def realtime_preview(env: AlertEnvironment, now: datetime, refresh: Refresh | None = None) -> Preview:
    """What the real-time rules would say now, ignoring alert state and writing nothing.

    The per-recipient daily cap applies as in a real run (riskiest first): a message whose every recipient is
    over the cap is folded, not shown; the counts say how many.
    """
    refresh = refresh or latest_refresh(env.store)
    inputs = gather_inputs(env, refresh, now)
    candidates = _candidates(env, refresh, inputs)
    cap = env.settings.daily_cap_per_recipient
    outbox = Outbox(env.store)
    day_start = datetime.combine(now.astimezone(env.timezone).date(), datetime.min.time(), env.timezone)
    sent: dict[str, int] = {}
    folded: dict[str, int] = {}
    previews = []
    for candidate in candidates:
        targets = deal_recipients(candidate.score.sales_rep_id, env.settings.routing)
        within = []
        for target in targets:
            if target not in sent:  # what today's real runs already sent counts against the cap
                sent[target] = outbox.count_for_target_since("realtime", target, day_start)
            if sent[target] < cap:
                sent[target] += 1
                within.append(target)
            else:
                folded[target] = folded.get(target, 0) + 1
        if not within:
            continue
        context = realtime_context(candidate.score, candidate.rule, candidate.detail, 0, "preview", inputs)
        previews.append((", ".join(r.split(":", 1)[1] for r in within), render_message("realtime", **context)))
    return Preview(previews, folded, cap, refresh.metrics.risk_rule)


RESOLVED_BECAUSE = {
    "deal closed": "the deal closed",
    "below threshold": "its risk is back below the alert's threshold",
}


def _queue_resolution(outbox: Outbox, alert: Alert, resolution: str, now: datetime) -> None:
    """Tell each recipient who got the alert that it is over, in the alert's thread (see `SlackSender.send`); a
    recipient who never got it (held back, or not delivered yet) hears nothing."""
    because = RESOLVED_BECAUSE.get(resolution, resolution)
    text = f":white_check_mark: Resolved: {escape_mrkdwn(alert.deal_id)} — {because}."
    message = Message(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
    for target in alert.recipients:
        if outbox.first_delivered(alert.id, target) is not None:
            outbox.enqueue(f"{alert.key}:resolved:{target}", RESOLUTION_KIND, target, message, now, alert_id=alert.id)


def _resolution(alert: Alert, inputs: ReportInputs) -> str:
    open_ids = {s.deal_id for s in inputs.scores}
    return "below threshold" if alert.deal_id in open_ids else "deal closed"


def report_message(
    kind: str, env: AlertEnvironment, now: datetime, refresh: Refresh | None = None
) -> tuple[Message, list[int]]:
    """Render one report; also returns the folded outbox ids it includes (daily only)."""
    message, folded_ids, _ = _report(kind, env, now, refresh or latest_refresh(env.store))
    return message, folded_ids


def _report(
    kind: str, env: AlertEnvironment, now: datetime, refresh: Refresh
) -> tuple[Message, list[int], ReportInputs]:
    inputs = gather_inputs(env, refresh, now)
    builders = {"daily": daily_context, "weekly": weekly_context, "monthly": monthly_context}
    message = render_message(kind, **builders[kind](inputs))
    folded_ids = [f["id"] for f in inputs.folded[:10]] if kind == "daily" else []
    return message, folded_ids, inputs


def report_with_charts(
    kind: str, env: AlertEnvironment, now: datetime, refresh: Refresh | None = None
) -> tuple[Message, list[int]]:
    """The report (of the latest refresh, or `refresh`), with its charts when it is a weekly or monthly one
    (`alerts.charts`), drawn from the same refresh and scores the report read."""
    message, folded_ids, inputs = _report(kind, env, now, refresh or latest_refresh(env.store))
    if kind in ("weekly", "monthly"):
        from salesintel.alerts.charts import report_charts  # matplotlib: imported only when a report draws

        metrics = inputs.metrics
        charts = report_charts(kind, metrics.trend, inputs.scores, metrics.risk_rule, metrics.anomalies["anomalies"])
        message = Message(message.text, message.blocks, tuple(charts))
    return message, folded_ids


def report_run(kind: str, env: AlertEnvironment, now: datetime, occurrence: str) -> bool:
    """Queue one report for its channel; `occurrence` (the scheduled fire time) makes a rerun a no-op."""
    message, folded_ids = report_with_charts(kind, env, now)
    with env.store.transaction():
        queued = Outbox(env.store).enqueue(
            f"{kind}:{occurrence}", kind, report_target(kind, env.settings.routing), message, now
        )
        if queued and folded_ids:
            Outbox(env.store).mark_digested(folded_ids)
    return queued


def digest_run(kind: str, env: AlertEnvironment, now: datetime, occurrence: str, target: str) -> bool:
    """Queue one report as a digest of its own to `target` (`email:address`, or `user:person` for a Slack DM), on
    its own schedule in the recipient's time zone: the same message the channel gets, as of now. Folded alerts stay
    for the channel's digest to mark."""
    message, _ = report_with_charts(kind, env, now)
    with env.store.transaction():
        return Outbox(env.store).enqueue(f"{kind}:{occurrence}:{target}", kind, target, message, now)


def ops_alert(env: AlertEnvironment, key: str, problem: str, now: datetime) -> bool:
    """Queue a message to the ops channel, once per `key`, and log it once (not on every tick that finds the same
    problem)."""
    message = render_message("ops", problem=problem, at=now.astimezone(env.timezone).strftime("%Y-%m-%d %H:%M %Z"))
    with env.store.transaction():
        queued = Outbox(env.store).enqueue(
            f"ops:{key}", "ops", report_target("ops", env.settings.routing), message, now
        )
    if queued:
        log.warning(problem, extra={"event": "ops_alert", "key": key})
    return queued


def held_snapshot_alert(env: AlertEnvironment, saved: GuardedSave, source: Path | str, now: datetime) -> bool:
    """The ops alert for a snapshot the guard held (`engine.snapshot_guard`): which, why, what is still in use, and
    how to accept it. Once per snapshot. `source`: the file, or the warehouse (then `str` of it)."""
    snapshot = saved.snapshot
    kept = f"; still using snapshot #{saved.previous.id}" if saved.previous else ""
    name, accept = (
        (source.name, f"salesintel ingest {source} --accept")
        if isinstance(source, Path)
        else (f"the {source}", "salesintel ingest --warehouse --accept")
    )
    problem = (
        f"snapshot #{snapshot.id} from {name} held, not used: {snapshot.held_reason}{kept}. "
        f"If the export is right: `{accept}`"
    )
    return ops_alert(env, f"held:{snapshot.id}", problem, now)


def health_checks(env: AlertEnvironment, now: datetime) -> list[str]:
    """Stale CRM data and model drift: ops alerts, each once per snapshot or model."""
    refresh = latest_refresh(env.store)
    snapshot = env.store.latest_snapshot()
    problems = []
    stale = stale_data(snapshot.taken_at, now, env.settings)
    if stale:
        problems.append(stale)
        ops_alert(env, f"stale:{snapshot.id}", stale, now)
    for problem in drift_problems(refresh.metrics.drift, env.settings):
        problems.append(problem)
        ops_alert(env, f"drift:{refresh.model_id}:{problem.split(' (')[0]}", problem, now)
    return problems

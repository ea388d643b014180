"""What each message says, decided from data: pure functions building the context its templates render.

Python chooses (which deals, which segments, whether a change is real); templates only word and lay it out.
Lists are cut here, with the count of what was left out, so no template has to know Slack's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from salesintel.alerts.deal_answer import deal_facts
from salesintel.alerts.settings import AlertsSettings
from salesintel.engine.records import MetricsSummary, ScoredDeal
from salesintel.engine.risk_rule import is_at_risk
from salesintel.engine.stats import fisher_vs_rest, wilson

LIST_LIMIT = 10


@dataclass(frozen=True)
class ReportInputs:
    """Everything a report may draw on, gathered from the store by `alerts.runs`."""

    metrics: MetricsSummary
    scores: list[ScoredDeal]
    now: datetime
    stale_warning: str | None
    settings: AlertsSettings
    previous_metrics: MetricsSummary | None = None
    wins: list[dict] = field(default_factory=list)
    folded: list[dict] = field(default_factory=list)
    alert_counts: dict = field(default_factory=dict)
    control: dict | None = None
    feedback: dict = field(default_factory=dict)
    """What recipients said of alerts in the last 30 days (`AlertLedger.feedback_summary`)."""
    owners: dict[str, str] = field(default_factory=dict)
    """rep id → Slack mention (`<@U…>`) for reps whose Slack user is known."""
    threshold_changes: list = field(default_factory=list)
    """Changes feedback made to the real-time threshold in the last 30 days (`alerts.tuning`)."""


def cut(items: list, limit: int = LIST_LIMIT) -> tuple[list, int]:
    """The first `limit` items and how many were left out (templates say "and N more")."""
    return items[:limit], max(0, len(items) - limit)


def _common(inputs: ReportInputs) -> dict:
    m = inputs.metrics
    return {
        "as_of": m.as_of,
        "snapshot": m.snapshot,
        "stale": inputs.stale_warning,
        "model": m.model,
        "overall": m.overall,
        "owners": inputs.owners,
        "rule": m.risk_rule,
        "coverage": m.coverage,
        "excluded": m.fields.get("excluded", ()),
    }


def realtime_context(score: ScoredDeal, rule: str, detail: str, alert_id: int, why: str, inputs: ReportInputs) -> dict:
    """The critical deal alert: deal, risk, how long it has been open vs typical, why, what to do, owner (the same
    facts `/deal-risk` gives: `alerts.deal_answer.deal_facts`)."""
    return {
        **_common(inputs),
        **deal_facts(score, inputs.metrics, detail if rule == "stalled" else None),
        "rule": rule,
        "detail": detail,
        "alert_id": alert_id,
        "why_now": why,
    }


def at_risk(scores: list[ScoredDeal], metrics: MetricsSummary | None) -> list[ScoredDeal]:
    """The deals at risk by the refresh's one rule, riskiest value first."""
    rule = metrics.risk_rule if metrics else None
    return sorted((s for s in scores if is_at_risk(s, rule)), key=lambda s: s.risk * s.deal_amount, reverse=True)


def worth_a_look(scores: list[ScoredDeal], metrics: MetricsSummary) -> list[ScoredDeal]:
    """Deals at risk first, then the other live deals by risk × amount; stale deals are listed apart."""
    risky = at_risk(scores, metrics)
    flagged = {s.deal_id for s in risky}
    rest = sorted(
        (s for s in scores if s.deal_id not in flagged and not s.stale),
        key=lambda s: s.risk * s.deal_amount,
        reverse=True,
    )
    return risky + rest


def stale_deals(scores: list[ScoredDeal]) -> list[ScoredDeal]:
    return sorted((s for s in scores if s.stale), key=lambda s: s.deal_amount, reverse=True)


def daily_context(inputs: ReportInputs) -> dict:
    """Pipeline summary for managers: pipeline, new alerts, the deals most worth a look, folded overflow."""
    m = inputs.metrics
    top, more = cut(worth_a_look(inputs.scores, m), inputs.settings.top_deals)
    folded, folded_more = cut(inputs.folded)
    stale_list, stale_more = cut(stale_deals(inputs.scores), 3)
    return {
        **_common(inputs),
        "pipeline": m.open_pipeline,
        "top": top,
        "top_more": more,
        "at_risk": _at_risk_totals(inputs),
        "alerts": inputs.alert_counts,
        "folded": folded,
        "folded_more": folded_more,
        "pqi": m.pqi,
        "stale_deals": stale_list,
        "stale_more": stale_more,
        "cap": inputs.settings.daily_cap_per_recipient,
        "quiet_to_digest": inputs.settings.quiet_hours.enabled and inputs.settings.quiet_hours.outside == "digest",
    }


def weekly_context(inputs: ReportInputs) -> dict:
    """Pipeline health for the CRO: win rate and change, PQI and change, revenue at risk, highlights, wins."""
    m = inputs.metrics
    weak_sources = [
        s
        for s in m.segments
        if s.dimension == "lead_source" and s.status == "significant" and s.rate.rate < m.overall.rate
    ]
    dropped = [
        a
        for a in m.anomalies["anomalies"]
        if a["signals"]["win_rate"].get("significant") and a["signals"]["win_rate"]["direction"] == "down"
    ]
    wins, wins_more = cut(sorted(inputs.wins, key=lambda w: w["deal_amount"], reverse=True), 5)
    previous = inputs.previous_metrics
    return {
        **_common(inputs),
        "win_change": _win_rate_change(m),
        "pqi": m.pqi,
        "pqi_before": previous.pqi if previous else None,
        "previous_as_of": previous.as_of if previous else None,
        "at_risk": _at_risk_totals(inputs),
        "pipeline": m.open_pipeline,
        "weak_sources": weak_sources,
        "segment_statement": m.statement,
        "dropped": dropped[:5],
        "wins": wins,
        "wins_more": wins_more,
        "wins_total": sum(w["deal_amount"] for w in inputs.wins),
        "wins_count": len(inputs.wins),
    }


def monthly_context(inputs: ReportInputs) -> dict:
    """Strategic deep-dive: anomalies with hypotheses and next steps, drivers, drift, alerting vs control."""
    m = inputs.metrics
    anomalies, more = cut(m.anomalies["anomalies"], 5)
    drivers = [d for d in (m.model.get("drivers") or ()) if d["status"] == "significant"][:5]
    return {
        **_common(inputs),
        "anomalies": anomalies,
        "anomalies_more": more,
        "anomaly_info": m.anomalies,
        "drivers": drivers,
        "drift": m.drift,
        "control": inputs.control,
        "feedback": inputs.feedback,
        "threshold_changes": inputs.threshold_changes,
        "trend": m.trend[-3:],
        "segment_statement": m.statement,
    }


def _at_risk_totals(inputs: ReportInputs) -> dict:
    return at_risk_totals(inputs.scores, inputs.metrics)


def at_risk_totals(scores: list[ScoredDeal], metrics: MetricsSummary | None) -> dict:
    """Deals at risk (count, value), the rule behind it, and the live and stale pipeline of `scores`: the one
    place these figures are computed for reports, /pipeline and App Home."""
    risky = at_risk(scores, metrics)
    rule = metrics.risk_rule if metrics else {}
    live = [s for s in scores if not s.stale]
    stale = [s for s in scores if s.stale]
    return {
        "count": len(risky),
        "value": sum(s.deal_amount for s in risky),
        "threshold": rule.get("threshold"),
        "active": bool(rule.get("active")),
        "reason": rule.get("reason", ""),
        "deals": risky,
        "live_count": len(live),
        "live_value": sum(s.deal_amount for s in live),
        "stale_count": len(stale),
        "stale_value": sum(s.deal_amount for s in stale),
        "expected_loss": sum(s.risk * s.deal_amount for s in live),
    }


def _win_rate_change(metrics: MetricsSummary) -> dict:
    """The last complete month of closes against the month before it, with Fisher's exact test."""
    trend = [t for t in metrics.trend if t["win_rate"]["n"]]
    if len(trend) < 2:
        return {"recent": None, "before": None, "p_value": None, "real": False}
    recent, before = trend[-1], trend[-2]
    if recent.get("partial") and len(trend) >= 3:
        recent, before = trend[-2], trend[-3]
    r, b = recent["win_rate"], before["win_rate"]
    p_value = fisher_vs_rest(r["wins"], r["n"], r["wins"] + b["wins"], r["n"] + b["n"])
    return {
        "recent": r,
        "recent_period": recent["period"],
        "before": b,
        "before_period": before["period"],
        "p_value": p_value,
        "real": p_value <= metrics.settings["fdr_q"],
    }


def control_comparison(alerted: list[bool], held_back: list[bool], min_sample: int) -> dict:
    """Win rates of closed deals that were alerted vs held back (control group), and whether they differ."""
    a = wilson(sum(alerted), len(alerted))
    c = wilson(sum(held_back), len(held_back))
    enough = a.n >= min_sample and c.n >= min_sample
    p_value = fisher_vs_rest(a.wins, a.n, a.wins + c.wins, a.n + c.n) if enough else None
    return {
        "alerted": a.to_dict(),
        "control": c.to_dict(),
        "p_value": p_value,
        "enough": enough,
        "min_sample": min_sample,
    }

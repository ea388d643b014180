"""What is worth saying: pure functions from a refresh's scores and metrics to alert candidates.

A candidate is not yet an alert: `alerts.episodes` decides whether it opens, repeats or stays silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from salesintel.alerts.settings import AlertsSettings
from salesintel.engine.records import ScoredDeal
from salesintel.engine.risk_rule import TUNED_RULE
from salesintel.engine.risk_rule import high_value_at_risk as high_value_at_risk_mask

HIGH_VALUE_AT_RISK = TUNED_RULE  # "high_value_at_risk": the rule whose threshold feedback tunes
STALLED = "stalled"


@dataclass(frozen=True)
class Candidate:
    rule: str
    deal_id: str
    risk: float
    score: ScoredDeal
    detail: str


def high_value_at_risk(scores: list[ScoredDeal], risk_rule: dict | None, settings: AlertsSettings) -> list[Candidate]:
    """Deals worth more than `min_amount` that are at risk by the refresh's one risk rule (the predicate lives in
    `engine.risk_rule`, where the backtest measures the same rule)."""
    flagged = high_value_at_risk_mask(
        np.fromiter((s.risk for s in scores), float, len(scores)),
        np.fromiter((s.stale for s in scores), bool, len(scores)),
        np.fromiter((s.deal_amount for s in scores), float, len(scores)),
        risk_rule,
        settings.realtime.min_amount,
    )
    return [
        Candidate(HIGH_VALUE_AT_RISK, s.deal_id, s.risk, s, f"risk {s.risk:.0%} on {s.deal_amount:,.0f}")
        for s, hit in zip(scores, flagged)
        if hit
    ]


def stalled(
    scores: list[ScoredDeal], stage_since: dict[str, date], as_of: date, settings: AlertsSettings
) -> list[Candidate]:
    """Not at Proposal or later by day `proposal_by_day`; or in Demo longer than `demo_max_days`.

    Needs each deal's stage at the as-of date: scores carry no stage when the snapshot is newer than the date,
    and then this rule says nothing. `stage_since` (deal → first day seen in its current stage, from several
    snapshots) enables the Demo rule.
    """
    rule, found = settings.stalled, []
    for score in scores:
        stage = score.deal_stage
        if not stage or score.stale:
            continue  # a stale deal is reported apart (likely dead), not alerted one by one
        if stage not in rule.late_stages and score.age_days >= rule.proposal_by_day:
            found.append(
                Candidate(
                    STALLED,
                    score.deal_id,
                    score.risk,
                    score,
                    f"open {score.age_days} days and still in {stage} "
                    f"(Proposal expected by day {rule.proposal_by_day})",
                )
            )
            continue
        since = stage_since.get(score.deal_id)
        if stage == "Demo" and since and (as_of - since).days > rule.demo_max_days:
            found.append(
                Candidate(
                    STALLED,
                    score.deal_id,
                    score.risk,
                    score,
                    f"in Demo for {(as_of - since).days} days (limit {rule.demo_max_days})",
                )
            )
    return found


def stale_data(snapshot_taken: datetime, now: datetime, settings: AlertsSettings) -> str | None:
    """A warning when the newest snapshot is older than `stale_after_hours`, else None."""
    age = now - snapshot_taken
    if age <= timedelta(hours=settings.stale_after_hours):
        return None
    hours = age.total_seconds() / 3600
    when = f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"
    return (
        f"CRM data is {when} old (snapshot taken {snapshot_taken:%Y-%m-%d %H:%M} UTC): answers use the last good data"
    )


def drift_problems(drift: Mapping | None, settings: AlertsSettings) -> list[str]:
    """Plain-words drift problems past the configured thresholds (population shift, skill decay)."""
    if not drift:
        return []
    problems = [
        f"open pipeline has shifted on {feature} (PSI {psi:.2f} > {settings.drift_psi_threshold})"
        for feature, psi in drift["psi"].items()
        if psi > settings.drift_psi_threshold
    ]
    skill = drift["skill"]
    if drift["model_has_skill"] and skill["auc"] is not None:
        if skill["holdout_auc"] - skill["auc"] > settings.skill_decay_threshold:
            problems.append(
                f"model skill decayed: AUC {skill['auc']:.2f} on {skill['closed_since_training']} deals "
                f"closed since training vs {skill['holdout_auc']:.2f} on its holdout"
            )
    return problems

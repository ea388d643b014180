"""Backtest: score the pipeline that was open at a past date, then read what actually happened to it.

The model is trained on history as of the date only; the outcomes come from the same snapshot, from deals that
closed after the date. Deals still open in the snapshot are unresolved and left out of every rate (and counted).
Besides AUC, Brier and calibration, it asks what the product promises, for the very rule every surface uses
(`engine.risk_rule`): of the live deals it would have called at risk — and of those above the real-time amount —
what share of the pipeline was flagged, how many were lost (precision), what share of all losses they caught
(recall), and the lift over the base loss rate, each with a 95% interval.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from salesintel.engine.asof import view_as_of
from salesintel.engine.evaluation import DealResamples, auc_with_interval, brier, calibration_table
from salesintel.engine.evidence import gather_evidence
from salesintel.engine.model import NotEnoughHistory, train
from salesintel.engine.refresh import EngineSettings, feature_space, risk_rule_for, space_after_model
from salesintel.engine.risk_rule import as_measured, high_value_at_risk, in_realtime_population, rule_outcome
from salesintel.engine.scoring import score_open_deals
from salesintel.engine.segments import compare_segments
from salesintel.engine.store import Snapshot


def backtest(deals: pd.DataFrame, snapshot: Snapshot, as_of: date, settings: EngineSettings, min_amount: float) -> dict:
    """Train and score as of `as_of`, then compare with the outcomes the snapshot recorded later."""
    view = view_as_of(deals, as_of, snapshot.taken_at.date())
    audited = feature_space(snapshot, view, settings)
    try:
        model, note = train(view.history, as_of, audited, settings.model, settings.metrics), None
    except NotEnoughHistory as error:
        model, note = None, str(error)
    space = space_after_model(audited, model)
    segments = compare_segments(view.history, space, settings.metrics) if len(view.history) else []
    evidence = (
        gather_evidence(view.history, space, segments, settings.metrics.confidence) if len(view.history) else None
    )
    scored = score_open_deals(view, evidence, model, None, space, settings.model, settings.metrics)
    scores = scored.frame()
    rule = risk_rule_for(model, note, settings)
    report = {
        "as_of": as_of.isoformat(),
        "open_deals": int(len(view.open)),
        "closed_deals": int(len(view.history)),
        "model_verdict": model.verdict if model else f"no model: {note}",
        "model_family": model.family if model else None,
        "model_candidates": model.evaluation.get("candidates", []) if model and not model.refused else [],
        "method": scored.method if len(scored) else None,
        "rule": _rule_summary(rule),
        "excluded_fields": [e.to_dict() for e in space.excluded],
    }
    if scores.empty:
        return {**report, "resolved": 0, "unresolved": 0}
    later = deals.set_index("deal_id").loc[scores["deal_id"], ["outcome", "closed_date"]]
    scores["resolved"] = later["outcome"].notna().to_numpy()
    scores["won"] = later["outcome"].eq("Won").to_numpy()
    resolved = scores[scores["resolved"]]
    report.update(
        resolved=int(len(resolved)), unresolved=int((~scores["resolved"]).sum()), stale=int(scores["stale"].sum())
    )
    if resolved.empty or resolved["won"].nunique() < 2:
        return report
    outcomes, p_win = resolved["won"].to_numpy(), resolved["p_win"].to_numpy()
    base_rate = float(view.history["won"].mean())
    model_brier, base_brier = brier(outcomes, p_win), brier(outcomes, np.full(len(outcomes), base_rate))
    rng = np.random.default_rng(settings.model.seed)
    report.update(
        auc=auc_with_interval(
            outcomes,
            p_win,
            DealResamples.draw(resolved["deal_id"].to_numpy(), settings.model.bootstrap_samples, rng),
            settings.metrics.confidence,
        ),
        brier=model_brier,
        base_rate_brier=base_brier,
        brier_skill=1 - model_brier / base_brier,
        calibration=calibration_table(outcomes, p_win, settings.model.calibration_bins),
        at_risk=_measured(resolved, rule, None, settings.model.seed),
        realtime=_measured(resolved, rule, min_amount, settings.model.seed, space.exclusion_reason("deal_amount")),
    )
    return report


def _rule_summary(rule: dict) -> dict:
    return {key: rule.get(key) for key in ("threshold", "source", "active", "reason", "target_share", "min_lift")}


def _measured(
    resolved: pd.DataFrame, rule: dict, min_amount: float | None, seed: int, amount_leak: str | None = None
) -> dict:
    """The rule's figures on the resolved live deals (above `min_amount` for the real-time rule).

    When the amounts encode the outcome, the snapshot's amount of a deal that closed later is its final one (0 if
    lost, in some exports), so "amount above the threshold" would select the won deals: the subset is not measured.
    """
    if min_amount is not None and amount_leak:
        return {
            "min_amount": min_amount,
            "active": bool(rule.get("active")),
            "skipped": f"Deal size {amount_leak}, so the later amounts would pick the won deals",
        }
    live = resolved[in_realtime_population(resolved["stale"], resolved["deal_amount"], min_amount)]
    result = {"min_amount": min_amount, "deals": int(len(live)), "active": bool(rule.get("active"))}
    if live.empty or rule.get("threshold") is None:
        return result
    lost = ~live["won"].to_numpy(dtype=bool)
    threshold = rule["threshold"]  # measured even when the rule is silent, so the reader sees why it is
    outcome = rule_outcome(live["risk"].to_numpy(), lost, live["deal_id"].to_numpy(), threshold, seed)
    flagged = high_value_at_risk(live["risk"], live["stale"], live["deal_amount"], as_measured(rule), min_amount)
    outcome["flagged_value"] = float(live.loc[flagged, "deal_amount"].sum())
    outcome["lost_value"] = float(live.loc[lost, "deal_amount"].sum())
    outcome["lost_value_flagged"] = float(live.loc[flagged & lost, "deal_amount"].sum())
    return {**result, **outcome}

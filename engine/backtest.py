"""Backtest: score the pipeline that was open at a past date, then read what actually happened to it.

The model is trained on history as of the date only; the outcomes come from the same snapshot, from deals that
closed after the date. Deals still open in the snapshot are unresolved and left out of every rate (and counted).
Besides AUC, Brier and calibration, it asks what the product promises: of the deals the real-time rule would have
flagged, how many were lost, compared with the base loss rate (lift), and how much revenue they carried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from engine.asof import view_as_of
from engine.evaluation import auc_with_interval, brier, calibration_table
from engine.evidence import gather_evidence
from engine.model import NotEnoughHistory, train
from engine.scoring import score_open_deals
from engine.settings import MetricsSettings, ModelSettings


@dataclass(frozen=True)
class AlertRule:
    """The real-time rule: a deal worth more than `min_amount` whose risk exceeds `min_risk`."""

    min_amount: float
    min_risk: float


def backtest(deals: pd.DataFrame, snapshot_taken: date, as_of: date, rule: AlertRule, model_settings: ModelSettings,
             metrics: MetricsSettings) -> dict:  # fmt: skip
    view = view_as_of(deals, as_of, snapshot_taken)
    try:
        model = train(view.history, as_of, model_settings, metrics)
    except NotEnoughHistory:
        model = None
    evidence = gather_evidence(view.history, model_settings.landmarks, metrics.amount_bands) if len(view.history) else None
    scores = pd.DataFrame([s.to_dict() for s in score_open_deals(view, evidence, model, None, model_settings, metrics)])
    report = {"as_of": as_of.isoformat(), "open_deals": int(len(view.open)), "closed_deals": int(len(view.history)),
              "model_verdict": model.verdict if model else "no model: too few closed deals",
              "method": scores["method"].iloc[0] if len(scores) else None}  # fmt: skip
    if scores.empty:
        return {**report, "resolved": 0, "unresolved": 0}
    later = deals.set_index("deal_id").loc[scores["deal_id"], ["outcome", "closed_date"]]
    scores["resolved"] = later["outcome"].notna().to_numpy()
    scores["won"] = later["outcome"].eq("Won").to_numpy()
    resolved = scores[scores["resolved"]]
    report.update(resolved=int(len(resolved)), unresolved=int((~scores["resolved"]).sum()))
    if resolved.empty or resolved["won"].nunique() < 2:
        return report
    outcomes, p_win = resolved["won"].to_numpy(), resolved["p_win"].to_numpy()
    base_rate = float(view.history["won"].mean())
    model_brier, base_brier = brier(outcomes, p_win), brier(outcomes, np.full(len(outcomes), base_rate))
    rng = np.random.default_rng(model_settings.seed)
    report.update(
        auc=auc_with_interval(outcomes, p_win, resolved["deal_id"].to_numpy(), model_settings.bootstrap_samples, rng,
                              metrics.confidence),
        brier=model_brier, base_rate_brier=base_brier, brier_skill=1 - model_brier / base_brier,
        calibration=calibration_table(outcomes, p_win, model_settings.calibration_bins),
        alert_rule=_alert_rule_outcome(resolved, rule),
    )  # fmt: skip
    return report


def _alert_rule_outcome(resolved: pd.DataFrame, rule: AlertRule) -> dict:
    flagged = resolved[(resolved["deal_amount"] > rule.min_amount) & (resolved["risk"] > rule.min_risk)]
    base_loss = float((~resolved["won"]).mean())
    lost_revenue = float(resolved.loc[~resolved["won"], "deal_amount"].sum())
    outcome = {"min_amount": rule.min_amount, "min_risk": rule.min_risk, "flagged": int(len(flagged)),
               "base_loss_rate": base_loss, "flagged_revenue": float(flagged["deal_amount"].sum()),
               "lost_revenue": lost_revenue}  # fmt: skip
    if flagged.empty:
        return {**outcome, "flagged_lost": 0, "flagged_loss_rate": None, "lift": None, "lost_revenue_covered": 0.0}
    flagged_lost = ~flagged["won"]
    loss_rate = float(flagged_lost.mean())
    covered = float(flagged.loc[flagged_lost, "deal_amount"].sum())
    return {**outcome, "flagged_lost": int(flagged_lost.sum()), "flagged_loss_rate": loss_rate,
            "lift": loss_rate / base_loss if base_loss else None,
            "lost_revenue_covered": covered / lost_revenue if lost_revenue else None}  # fmt: skip

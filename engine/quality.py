"""The brief's two custom metrics, PQI and RES, and the rule-based P(win) they use before a model has skill.

- Pipeline Quality Index: PQI = (share of open pipeline that is high-probability) × (mean / median open deal
  size). "Share" is by value: the amount in deals whose P(win) is at least `high_probability`, over all open
  amount. The size ratio is above 1 when a few large deals dominate the pipeline.
- Revenue Efficiency Score: RES = (won revenue / total pipeline revenue) × win rate, both over the same deals:
  those closed in the window. "Total pipeline revenue" is the amount of every deal that reached a decision in
  the window, won or lost, so RES is in [0, 1] and falls when losses are large or frequent.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from salesintel.engine.settings import MetricsSettings

RULE_STAGE = "rule: stage probability table"
RULE_BASE_RATE = "rule: historical base rate (stage at the as-of date unknown)"


@dataclass(frozen=True)
class WinProbabilities:
    """P(win) per open deal (aligned with the open frame's index) and the method that produced them."""

    values: pd.Series
    method: str


def rule_based_win_probability(
    open_deals: pd.DataFrame, history: pd.DataFrame, stage_known: bool, settings: MetricsSettings
) -> WinProbabilities:
    """The configured stage table when the stage is point-in-time; otherwise everyone gets the base rate (or, below
    `min_sample` closed deals, the configured default). Unknown stages get the default. The one rule-based P(win):
    scores and every PQI path use it."""
    if stage_known:
        table = settings.stage_win_probability
        values = open_deals["deal_stage"].map(table).fillna(settings.default_win_probability).astype(float)
        return WinProbabilities(values, RULE_STAGE)
    base_rate = (
        float(history["won"].mean()) if len(history) >= settings.min_sample else settings.default_win_probability
    )
    return WinProbabilities(pd.Series(base_rate, index=open_deals.index, dtype=float), RULE_BASE_RATE)


def pipeline_quality_index(amounts: pd.Series, probabilities: pd.Series, high_probability: float) -> dict:
    """PQI of an open pipeline with its two factors, so a reader can see which one moved."""
    if amounts.empty or amounts.sum() <= 0:
        return {"pqi": None, "high_probability_share": None, "size_ratio": None, "open_deals": int(len(amounts))}
    high_share = float(amounts[probabilities >= high_probability].sum() / amounts.sum())
    median = float(amounts.median())
    if median <= 0:  # most open amounts are 0: the size ratio means nothing
        return {"pqi": None, "high_probability_share": high_share, "size_ratio": None, "open_deals": int(len(amounts))}
    size_ratio = float(amounts.mean() / median)
    return {
        "pqi": high_share * size_ratio,
        "high_probability_share": high_share,
        "size_ratio": size_ratio,
        "open_deals": int(len(amounts)),
    }


def revenue_efficiency_score(closed: pd.DataFrame) -> dict:
    """RES of the deals closed in a window (won revenue share × win rate), with its two factors and n."""
    total = float(closed["deal_amount"].sum())
    if closed.empty or total <= 0:
        return {"res": None, "won_revenue_share": None, "win_rate": None, "n": int(len(closed))}
    won_share = float(closed.loc[closed["won"], "deal_amount"].sum() / total)
    win_rate = float(closed["won"].mean())
    return {
        "res": won_share * win_rate,
        "won_revenue_share": won_share,
        "win_rate": win_rate,
        "n": int(len(closed)),
        "won_revenue": float(closed.loc[closed["won"], "deal_amount"].sum()),
        "total_revenue": total,
    }

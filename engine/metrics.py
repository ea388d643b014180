"""Pipeline metrics as of a date: win rates with intervals, segment tests, periods, velocity, PQI, RES.

`compute_metrics` is a pure function of (deals, as-of date, when the snapshot was taken, settings): it returns a
JSON-ready dict that the store keeps with the refresh and that templates render. Nothing from after the as-of
date is used; see `engine.asof`.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from engine.asof import AsOfView, view_as_of
from engine.quality import (
    WinProbabilities,
    pipeline_quality_index,
    revenue_efficiency_score,
    rule_based_win_probability,
)
from engine.segments import compare_segments, findings_statement
from engine.settings import MetricsSettings
from engine.stats import mann_whitney, wilson


def compute_metrics(
    deals: pd.DataFrame,
    as_of: date,
    snapshot_taken: date,
    settings: MetricsSettings,
    probabilities: WinProbabilities | None = None,
) -> dict:
    """Everything `salesintel metrics` shows. `probabilities` (P(win) per open deal) default to the rule-based ones."""
    view = view_as_of(deals, as_of, snapshot_taken)
    history = view.history
    if probabilities is None:
        probabilities = rule_based_win_probability(view.open, history, view.stage_known, settings)
    segments = compare_segments(history, settings) if len(history) else []
    window_start = pd.Timestamp(as_of) - pd.Timedelta(days=settings.res_window_days)
    return {
        "as_of": as_of.isoformat(),
        "stage_known": view.stage_known,
        "settings": {"min_sample": settings.min_sample, "fdr_q": settings.fdr_q, "confidence": settings.confidence,
                     "high_probability": settings.high_probability, "res_window_days": settings.res_window_days},
        "overall": wilson(history["won"].sum(), len(history), settings.confidence).to_dict(),
        "segments": [result.to_dict() for result in segments],
        "comparisons": sum(1 for r in segments if r.q_value is not None),
        "significant": sum(1 for r in segments if r.status == "significant"),
        "statement": findings_statement(segments, settings),
        "periods": {"month": _period_rates(history, "M", settings), "quarter": _period_rates(history, "Q", settings)},
        "velocity": _velocity(history),
        "open_pipeline": _open_pipeline(view, probabilities),
        "pqi": pipeline_quality_index(view.open["deal_amount"], probabilities.values, settings.high_probability),
        "res": revenue_efficiency_score(history[history["closed_date"] > window_start]),
        "trend": _trend(deals, as_of, snapshot_taken, settings),
    }  # fmt: skip


def _period_rates(history: pd.DataFrame, frequency: str, settings: MetricsSettings) -> list[dict]:
    """Win rate per month ("M") or quarter ("Q") of close, oldest first."""
    periods = history["closed_date"].dt.to_period(frequency)
    counts = history.groupby(periods)["won"].agg(["sum", "count"]).sort_index()
    return [{"period": str(period), **wilson(wins, n, settings.confidence).to_dict()}
            for period, (wins, n) in counts.iterrows()]  # fmt: skip


def _velocity(history: pd.DataFrame) -> dict:
    """Days from creation to close, won vs lost, and whether the two really differ (Mann–Whitney U)."""
    won = history.loc[history["won"], "sales_cycle_days"].astype(float)
    lost = history.loc[~history["won"], "sales_cycle_days"].astype(float)

    def summary(days: pd.Series) -> dict:
        if days.empty:
            return {"n": 0, "median": None, "mean": None, "p25": None, "p75": None}
        return {"n": int(len(days)), "median": float(days.median()), "mean": float(days.mean()),
                "p25": float(days.quantile(0.25)), "p75": float(days.quantile(0.75))}  # fmt: skip

    return {"won": summary(won), "lost": summary(lost), "p_value": mann_whitney(won.to_numpy(), lost.to_numpy())}


def _open_pipeline(view: AsOfView, probabilities: WinProbabilities) -> dict:
    """Size of the open pipeline, its expected (probability-weighted) value, and how old it is."""
    open_deals = view.open
    by_stage = []
    if view.stage_known and len(open_deals):
        grouped = open_deals.groupby("deal_stage")["deal_amount"].agg(["count", "sum"])
        by_stage = [{"stage": stage, "count": int(c), "value": float(s)} for stage, (c, s) in grouped.iterrows()]
    return {
        "count": int(len(open_deals)),
        "value": float(open_deals["deal_amount"].sum()),
        "expected_value": float((open_deals["deal_amount"] * probabilities.values).sum()),
        "probability_method": probabilities.method,
        "median_age_days": float(open_deals["age_days"].median()) if len(open_deals) else None,
        "older_than_90_days": int((open_deals["age_days"] > 90).sum()),
        "by_stage": by_stage,
    }


def _trend(deals: pd.DataFrame, as_of: date, snapshot_taken: date, settings: MetricsSettings) -> list[dict]:
    """Per month (last `trend_months`, ending with the as-of month): win rate, RES of that month's closes, and PQI
    of the pipeline open at the month's end (or the as-of date). PQI here always uses the rule-based P(win), so
    months compare like with like."""
    trend = []
    last = pd.Period(as_of, "M")
    for period in pd.period_range(end=last, periods=settings.trend_months, freq="M"):
        end = min(period.end_time.date(), as_of)
        view = view_as_of(deals, end, snapshot_taken)
        closed = view.history[view.history["closed_date"].dt.to_period("M") == period]
        probabilities = rule_based_win_probability(view.open, view.history, view.stage_known, settings)
        trend.append({
            "period": str(period),
            "win_rate": wilson(closed["won"].sum(), len(closed), settings.confidence).to_dict(),
            "res": revenue_efficiency_score(closed)["res"],
            "pqi": pipeline_quality_index(view.open["deal_amount"], probabilities.values,
                                          settings.high_probability)["pqi"],
            "open_deals": int(len(view.open)),
            "partial": end < period.end_time.date(),
        })  # fmt: skip
    return trend

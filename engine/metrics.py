"""Pipeline metrics as of a date: win rates with intervals, segment tests, periods, velocity, PQI, RES.

`compute_metrics` is a pure function of (deals, as-of date, when the snapshot was taken, settings): it returns a
JSON-ready dict that the store keeps with the refresh and that templates render. Nothing from after the as-of
date is used; see `engine.asof`.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from salesintel.engine.asof import AsOfView, data_span, view_as_of
from salesintel.engine.fields import AuditSettings, FeatureSpace, build_feature_space, candidate_fields
from salesintel.engine.quality import (
    WinProbabilities,
    pipeline_quality_index,
    revenue_efficiency_score,
    rule_based_win_probability,
)
from salesintel.engine.segments import SegmentResult, compare_segments, findings_statement
from salesintel.engine.settings import MetricsSettings, ModelSettings
from salesintel.engine.stats import mann_whitney, wilson


def compute_metrics(
    deals: pd.DataFrame,
    as_of: date,
    snapshot_taken: date,
    settings: MetricsSettings,
    space: FeatureSpace | None = None,
    probabilities: WinProbabilities | None = None,
    segments: list[SegmentResult] | None = None,
    trend: list[dict] | None = None,
    view: AsOfView | None = None,
) -> dict:
    """Everything `salesintel metrics` shows. `probabilities` (P(win) per open deal) default to the rule-based ones.

    Stale deals (older than `space.supported_age`) are counted apart from the live pipeline and left out of PQI
    and expected value unless `settings.include_stale_in_pipeline`.
    """
    if view is None:  # a refresh passes the view it already cut
        view = view_as_of(deals, as_of, snapshot_taken)
    history = view.history
    if space is None:  # the built-in fields, audited with default model settings (a refresh passes its own space)
        space = build_feature_space(
            candidate_fields({}), history, view.open, AuditSettings.of(settings, ModelSettings())
        )
    if probabilities is None:
        probabilities = rule_based_win_probability(view.open, history, view.stage_known, settings)
    if segments is None:
        segments = compare_segments(history, space, settings) if len(history) else []
    window_start = pd.Timestamp(as_of) - pd.Timedelta(days=settings.res_window_days)
    if trend is None:
        trend = monthly_trend(deals, as_of, snapshot_taken, settings, space)
    pqi = open_pipeline_pqi(view.open, probabilities.values, space, settings)
    pqi["rule_based"] = trend[-1]["pqi"] if trend else None
    return {
        "as_of": as_of.isoformat(),
        "stage_known": view.stage_known,
        "settings": {
            "min_sample": settings.min_sample,
            "fdr_q": settings.fdr_q,
            "confidence": settings.confidence,
            "high_probability": settings.high_probability,
            "res_window_days": settings.res_window_days,
            "include_stale_in_pipeline": settings.include_stale_in_pipeline,
        },
        "coverage": data_coverage(deals, as_of),
        "fields": space.to_dict(),
        "overall": wilson(history["won"].sum(), len(history), settings.confidence).to_dict(),
        "segments": [result.to_dict() for result in segments],
        "comparisons": sum(1 for r in segments if r.q_value is not None),
        "significant": sum(1 for r in segments if r.status == "significant"),
        "statement": findings_statement(segments, settings, len(space.fields)),
        "periods": {"month": _period_rates(history, "M", settings), "quarter": _period_rates(history, "Q", settings)},
        "velocity": _velocity(history),
        "open_pipeline": _open_pipeline(view, probabilities, space, settings),
        "pqi": pqi,
        "res": _res(history[history["closed_date"] > window_start], space),
        "trend": trend,
        "warnings": _warnings(space),
    }


def _res(closed: pd.DataFrame, space: FeatureSpace) -> dict:
    """RES, unless the amounts encode the outcome (then revenue shares would only restate who won)."""
    leak = space.exclusion_reason("deal_amount")
    if leak:
        return {
            "res": None,
            "won_revenue_share": None,
            "win_rate": None,
            "n": int(len(closed)),
            "note": f"Deal size {leak}, so revenue shares would only restate outcomes",
        }
    return revenue_efficiency_score(closed)


def _warnings(space: FeatureSpace) -> list[str]:
    leak = space.exclusion_reason("deal_amount")
    if not leak:
        return []
    return [
        f"Deal size {leak}. RES is not computed, and for a past date the amount of a deal that closed later is "
        f"its final amount, so past pipeline values and the PQI trend understate what was open."
    ]


def data_coverage(deals: pd.DataFrame, as_of: date) -> dict:
    """The dates the data covers up to `as_of`: its first and last event (a creation or a close), and the gap to
    the as-of date when the export ends before it."""
    span = data_span(deals, as_of)
    if span is None:
        return {"first": None, "last": None, "days_after_data": None}
    first, last = span
    return {
        "first": first.date().isoformat(),
        "last": last.date().isoformat(),
        "days_after_data": int((pd.Timestamp(as_of) - last).days),
    }


def open_pipeline_pqi(
    open_deals: pd.DataFrame, probabilities: pd.Series, space: FeatureSpace, settings: MetricsSettings
) -> dict:
    """PQI of the live open pipeline (stale deals left out unless configured): the one PQI every path uses."""
    live = (
        ~space.stale(open_deals["age_days"])
        if not settings.include_stale_in_pipeline
        else pd.Series(True, index=open_deals.index)
    )
    return pipeline_quality_index(open_deals.loc[live, "deal_amount"], probabilities[live], settings.high_probability)


def _period_rates(history: pd.DataFrame, frequency: str, settings: MetricsSettings) -> list[dict]:
    """Win rate per month ("M") or quarter ("Q") of close, oldest first."""
    periods = history["closed_date"].dt.to_period(frequency)
    counts = history.groupby(periods)["won"].agg(["sum", "count"]).sort_index()
    return [
        {"period": str(period), **wilson(wins, n, settings.confidence).to_dict()}
        for period, (wins, n) in counts.iterrows()
    ]


def _velocity(history: pd.DataFrame) -> dict:
    """Days from creation to close, won vs lost, and whether the two really differ (Mann–Whitney U)."""
    won = history.loc[history["won"], "sales_cycle_days"].astype(float)
    lost = history.loc[~history["won"], "sales_cycle_days"].astype(float)

    def summary(days: pd.Series) -> dict:
        if days.empty:
            return {"n": 0, "median": None, "mean": None, "p25": None, "p75": None}
        return {
            "n": int(len(days)),
            "median": float(days.median()),
            "mean": float(days.mean()),
            "p25": float(days.quantile(0.25)),
            "p75": float(days.quantile(0.75)),
        }

    return {"won": summary(won), "lost": summary(lost), "p_value": mann_whitney(won.to_numpy(), lost.to_numpy())}


def _open_pipeline(
    view: AsOfView, probabilities: WinProbabilities, space: FeatureSpace, settings: MetricsSettings
) -> dict:
    """The live open pipeline (count, value, expected value, age) and, apart, the stale deals in it."""
    stale = space.stale(view.open["age_days"])
    counted = view.open if settings.include_stale_in_pipeline else view.open[~stale]
    live = view.open[~stale]
    # count, value and expected value describe the same deals: live ones, or all with include_stale_in_pipeline
    by_stage = []
    if view.stage_known and len(live):
        stages = live["deal_stage"].astype(object).fillna("(not recorded)")  # a categorical takes no new level
        grouped = live.groupby(stages)["deal_amount"].agg(["count", "sum"])
        by_stage = [{"stage": stage, "count": int(c), "value": float(s)} for stage, (c, s) in grouped.iterrows()]
    long_days = space.landmarks[-1]
    return {
        "count": int(len(counted)),
        "value": float(counted["deal_amount"].sum()),
        "expected_value": float((counted["deal_amount"] * probabilities.values[counted.index]).sum()),
        "probability_method": probabilities.method,
        "median_age_days": float(live["age_days"].median()) if len(live) else None,
        "long_open_days": int(long_days),
        "long_open_from_data": space.landmarks_from_data,
        "long_open": int((live["age_days"] > long_days).sum()),
        "includes_stale": settings.include_stale_in_pipeline,
        "stale_count": int(stale.sum()),
        "stale_value": float(view.open.loc[stale, "deal_amount"].sum()),
        "stale_after_days": space.supported_age,
        "stale_quantile": space.supported_quantile,
        "by_stage": by_stage,
    }


def monthly_trend(
    deals: pd.DataFrame, as_of: date, snapshot_taken: date, settings: MetricsSettings, space: FeatureSpace
) -> list[dict]:
    """Per month (last `trend_months`, ending with the as-of month): win rate, RES of that month's closes, and PQI
    of the pipeline open at the month's end (or the as-of date). PQI here always uses the rule-based P(win), so
    months compare like with like.

    Each month is cut as `view_as_of` cuts a date (closed by then with an outcome = history, created by then and not
    closed = open, stage only when the snapshot is not later), from masks over the columns, not from twelve copies
    of the deal table."""
    created, closed = deals["created_date"], deals["closed_date"]
    decided = deals["outcome"].notna() & closed.notna()
    won = deals["outcome"].eq("Won")
    closed_month = closed.dt.to_period("M")
    created_month = created.dt.to_period("M")
    decided_by_as_of = decided & (closed <= pd.Timestamp(as_of))
    trend = []
    for period in pd.period_range(end=pd.Period(as_of, "M"), periods=settings.trend_months, freq="M"):
        end = min(period.end_time.date(), as_of)
        cut = pd.Timestamp(end)
        closed_by = decided & (closed <= cut)
        in_month = closed_by & (closed_month == period)
        month_closes = pd.DataFrame({"deal_amount": deals.loc[in_month, "deal_amount"], "won": won[in_month]})
        open_mask = (created <= cut) & ~closed_by
        stage_known = snapshot_taken <= end
        open_deals = pd.DataFrame(
            {
                "deal_amount": deals.loc[open_mask, "deal_amount"],
                "deal_stage": deals.loc[open_mask, "deal_stage"] if stage_known else None,
                "age_days": (cut - created[open_mask]).dt.days,
            }
        )
        probabilities = rule_based_win_probability(
            open_deals, pd.DataFrame({"won": won[closed_by]}), stage_known, settings
        )
        trend.append(
            {
                "period": str(period),
                "win_rate": wilson(month_closes["won"].sum(), len(month_closes), settings.confidence).to_dict(),
                "res": _res(month_closes, space)["res"],
                "pqi": open_pipeline_pqi(open_deals, probabilities.values, space, settings)["pqi"],
                "open_deals": int(open_mask.sum()),
                "partial": end < period.end_time.date(),
                "cohort": _creation_cohort(created_month == period, created, decided_by_as_of, won, as_of, settings),
            }
        )
    return trend


def _creation_cohort(
    in_cohort: pd.Series, created: pd.Series, decided: pd.Series, won: pd.Series, as_of: date, settings: MetricsSettings
) -> dict:
    """The deals created in one month, as known at the as-of date: how many, how many have closed, and the win rate
    of those (with its interval). A young cohort's closed deals are its fast ones, so `decided_share` says how much
    of the cohort the rate speaks for."""
    cohort = in_cohort & (created <= pd.Timestamp(as_of))
    closed = cohort & decided
    count = int(cohort.sum())
    return {
        "win_rate": wilson(int((closed & won).sum()), int(closed.sum()), settings.confidence).to_dict(),
        "created": count,
        "decided_share": float(closed.sum() / count) if count else None,
    }

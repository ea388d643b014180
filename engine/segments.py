"""Where are we winning and losing? Win rate per segment, each tested against the rest of the book.

Every segment with enough closed deals is compared with all other deals by Fisher's exact test, and the whole
family of comparisons made in one refresh is controlled with Benjamini–Hochberg. A segment below the minimum
sample is reported as "insufficient data" and is not tested: it can never become a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from engine.bands import amount_band, cycle_band
from engine.settings import SEGMENT_FIELDS, MetricsSettings
from engine.stats import Rate, benjamini_hochberg, fisher_vs_rest, wilson

SIGNIFICANT, NOT_SIGNIFICANT, INSUFFICIENT = "significant", "not significant", "insufficient data"

DIMENSIONS = (*SEGMENT_FIELDS, "amount_band", "cycle_band", "deal_stage", "close_quarter")
"""What closed deals are cut by. Cycle band and stage describe how deals ended, not how they started."""


@dataclass(frozen=True)
class SegmentResult:
    dimension: str
    value: str
    rate: Rate
    rest: Rate
    p_value: float | None
    q_value: float | None
    status: str

    def to_dict(self) -> dict:
        return {"dimension": self.dimension, "value": self.value, "rate": self.rate.to_dict(),
                "rest": self.rest.to_dict(), "p_value": self.p_value, "q_value": self.q_value,
                "status": self.status}  # fmt: skip


def with_dimensions(history: pd.DataFrame, settings: MetricsSettings) -> pd.DataFrame:
    """History with the derived cut columns (bands, close quarter) added."""
    frame = history.copy()
    frame["amount_band"] = amount_band(frame["deal_amount"], settings.amount_bands)
    frame["cycle_band"] = cycle_band(frame["sales_cycle_days"], settings.cycle_bands)
    frame["close_quarter"] = frame["closed_date"].dt.to_period("Q").astype(str)
    return frame


def compare_segments(history: pd.DataFrame, settings: MetricsSettings) -> list[SegmentResult]:
    """One result per (dimension, value) of closed deals, tested against the rest, with BH-adjusted q-values."""
    frame = with_dimensions(history, settings)
    total_wins, total_n = int(frame["won"].sum()), len(frame)
    rows = []
    for dimension in DIMENSIONS:
        counts = frame.groupby(frame[dimension].fillna("Unknown"))["won"].agg(["sum", "count"])
        for value, (wins, n) in counts.iterrows():
            rest_wins, rest_n = total_wins - wins, total_n - n
            testable = n >= settings.min_sample and rest_n >= settings.min_sample
            p_value = fisher_vs_rest(wins, n, total_wins, total_n) if testable else None
            rows.append((dimension, str(value), wilson(wins, n, settings.confidence),
                         wilson(rest_wins, rest_n, settings.confidence), p_value))  # fmt: skip
    q_values = iter(benjamini_hochberg([row[4] for row in rows if row[4] is not None]))
    results = []
    for dimension, value, rate, rest, p_value in rows:
        q_value = next(q_values) if p_value is not None else None
        if q_value is None:
            status = INSUFFICIENT
        else:
            status = SIGNIFICANT if q_value <= settings.fdr_q else NOT_SIGNIFICANT
        results.append(SegmentResult(dimension, value, rate, rest, p_value, q_value, status))
    return results


def findings_statement(results: list[SegmentResult], settings: MetricsSettings) -> str:
    """One honest sentence on whether any segment's win rate really differs from the rest."""
    tested = [r for r in results if r.status != INSUFFICIENT]
    found = [r for r in results if r.status == SIGNIFICANT]
    skipped = len(results) - len(tested)
    tail = f" {skipped} segment(s) had fewer than {settings.min_sample} closed deals: insufficient data." if skipped else ""
    if not tested:
        return f"Not enough closed deals to compare any segment (minimum {settings.min_sample}).{tail}"
    if not found:
        return (f"No segment's win rate differs significantly from the rest: {len(tested)} comparisons, "
                f"Benjamini–Hochberg false discovery rate {settings.fdr_q:.0%}. The differences shown are "
                f"within what chance alone produces.{tail}")  # fmt: skip
    names = ", ".join(f"{r.dimension}={r.value}" for r in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return (f"{len(found)} of {len(tested)} segments differ significantly from the rest "
            f"(Benjamini–Hochberg, false discovery rate {settings.fdr_q:.0%}): {names}{more}.{tail}")  # fmt: skip

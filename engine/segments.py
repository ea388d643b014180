"""Where are we winning and losing? Win rate per segment, each tested against the rest of the book.

Every segment with enough closed deals is compared with all other deals by Fisher's exact test, and the whole
family of comparisons made in one refresh is controlled with Benjamini–Hochberg. A segment below the minimum
sample is reported as "insufficient data" and is not tested: it can never become a finding.

Only the fields of the refresh's `FeatureSpace` are cut by: fields known when a deal is created that passed the
audit of `engine.fields`. Stage, days to close and close quarter describe how deals ended, so a "finding" on them
is a tautology; they are listed as excluded instead. Deals with no value for a field are counted, never a segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from salesintel.engine.settings import MetricsSettings
from salesintel.engine.stats import Rate, benjamini_hochberg, fisher_vs_rest, wilson

if TYPE_CHECKING:
    from salesintel.engine.fields import FeatureSpace

SIGNIFICANT, NOT_SIGNIFICANT, INSUFFICIENT = "significant", "not significant", "insufficient data"


@dataclass(frozen=True)
class SegmentResult:
    dimension: str
    value: str
    rate: Rate
    rest: Rate
    p_value: float | None
    q_value: float | None
    status: str
    label: str = ""
    """The field's name as reports say it (e.g. "Lead source")."""
    field: str = ""
    """The deal field cut by (the dimension is that field, or the band of a number field)."""

    def to_dict(self) -> dict:
        return {
            "dimension": self.dimension,
            "field": self.field,
            "label": self.label,
            "value": self.value,
            "rate": self.rate.to_dict(),
            "rest": self.rest.to_dict(),
            "p_value": self.p_value,
            "q_value": self.q_value,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, value: dict) -> SegmentResult:
        return cls(
            dimension=value["dimension"],
            value=value["value"],
            rate=Rate.from_dict(value["rate"]),
            rest=Rate.from_dict(value["rest"]),
            p_value=value["p_value"],
            q_value=value["q_value"],
            status=value["status"],
            label=value.get("label", ""),
            field=value.get("field", ""),
        )


def compare_segments(history: pd.DataFrame, space: FeatureSpace, settings: MetricsSettings) -> list[SegmentResult]:
    """One result per (dimension, value) of closed deals, tested against the rest, with BH-adjusted q-values."""
    from salesintel.engine.fields import MISSING_LEVEL

    won = history["won"].to_numpy(dtype=bool)
    total_wins, total_n = int(won.sum()), len(won)
    rows = []
    for dimension in space.dimensions:
        counts = space.level_counts(history, dimension, won)
        counts = counts[counts.index != MISSING_LEVEL]
        for value, (wins, n) in counts.iterrows():
            rest_wins, rest_n = total_wins - wins, total_n - n
            testable = n >= settings.min_sample and rest_n >= settings.min_sample
            p_value = fisher_vs_rest(wins, n, total_wins, total_n) if testable else None
            rows.append(
                (
                    dimension,
                    str(value),
                    wilson(wins, n, settings.confidence),
                    wilson(rest_wins, rest_n, settings.confidence),
                    p_value,
                )
            )
    q_values = iter(benjamini_hochberg([row[4] for row in rows if row[4] is not None]))
    fields = {info.dimension: info for info in space.fields}
    results = []
    for dimension, value, rate, rest, p_value in rows:
        q_value = next(q_values) if p_value is not None else None
        if q_value is None:
            status = INSUFFICIENT
        else:
            status = SIGNIFICANT if q_value <= settings.fdr_q else NOT_SIGNIFICANT
        results.append(
            SegmentResult(
                dimension, value, rate, rest, p_value, q_value, status, fields[dimension].label, fields[dimension].name
            )
        )
    return results


def findings_statement(
    results: Sequence[SegmentResult],
    settings: MetricsSettings,
    fields: int | None = None,
    withheld: Callable[[SegmentResult], bool] | None = None,
) -> str:
    """One honest sentence on whether any segment's win rate really differs from the rest.

    `fields`: how many fields were available to cut by (0 when the audit or the leak guard excluded them all).
    `withheld`: findings the reader may not see by name (another team's reps): counted, never named.
    """
    if fields == 0:
        return (
            "No field is left to compare segments by: every field was excluded from findings (see the excluded "
            "fields and why)."
        )
    tested = [r for r in results if r.status != INSUFFICIENT]
    found = [r for r in results if r.status == SIGNIFICANT]
    skipped = len(results) - len(tested)
    tail = (
        f" {skipped} segment(s) had fewer than {settings.min_sample} closed deals: insufficient data."
        if skipped
        else ""
    )
    if not tested:
        return f"Not enough closed deals to compare any segment (minimum {settings.min_sample}).{tail}"
    if not found:
        return (
            f"No segment's win rate differs significantly from the rest: {len(tested)} comparisons, "
            f"Benjamini–Hochberg false discovery rate {settings.fdr_q:.0%}. The differences shown are "
            f"within what chance alone produces.{tail}"
        )
    hidden = [r for r in found if withheld and withheld(r)]
    shown = [r for r in found if not (withheld and withheld(r))]
    names = ", ".join(f"{r.label or r.dimension} {r.value}" for r in shown[:5])
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    if hidden:
        others = f"{len(hidden)} segment(s) outside your team"
        names, more = (f"{names}{more} and {others}", "") if names else (others, "")
    return (
        f"{len(found)} of {len(tested)} segments differ significantly from the rest "
        f"(Benjamini–Hochberg, false discovery rate {settings.fdr_q:.0%}): {names}{more}.{tail}"
    )

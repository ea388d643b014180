"""What history says about each attribute an open deal has: win rates with n and interval, raw and shrunk.

Built once per refresh from the closed deals (one row per deal) and their landmarked examples (for age), it gives
every reason its plain-word evidence ("Outbound lead: 41% won (n=1,246; 95% CI 38–44%) vs 45% overall") and,
when the driver model has no skill, the empirical-Bayes probabilities themselves. Whether a level's difference is
beyond chance is not decided here: it is the segment test of `engine.segments` (Fisher vs rest, BH-controlled),
so a reason and the segment table can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from salesintel.engine.features import still_open_at
from salesintel.engine.fields import FeatureSpace
from salesintel.engine.records import Reason
from salesintel.engine.segments import SIGNIFICANT, SegmentResult
from salesintel.engine.shrinkage import ShrunkRates, shrink
from salesintel.engine.stats import wilson


@dataclass(frozen=True)
class Evidence:
    overall: float
    closed_deals: int
    attributes: dict[str, ShrunkRates]
    ages: ShrunkRates
    """Indexed by landmark age (days): win rate of deals still open at that age."""
    space: FeatureSpace
    significant_levels: frozenset = field(default_factory=frozenset)
    """(dimension, level) pairs whose win rate differs from the rest beyond chance (the segment tests)."""
    confidence: float = 0.95
    _memo: dict = field(default_factory=dict, repr=False)
    """Per-landmark lookups, computed once per refresh (not per deal); owned by this instance, so it goes with it."""

    def attribute_reason(self, dimension: str, level: str, effect: float) -> Reason:
        label = self.space.level_text(dimension, level)
        table = self.attributes[dimension].table
        if level not in table.index:
            return Reason(dimension, level, f"{label}: no closed deals yet", effect, False, label=label)
        row = table.loc[level]
        rate = wilson(int(row["wins"]), int(row["n"]), self.confidence)
        text = (
            f"{label}: {rate.rate:.0%} won (n={rate.n:,}; 95% CI {rate.low * 100:.0f}–{rate.high:.0%}) "
            f"vs {self.overall:.0%} overall"
        )
        significant = (dimension, level) in self.significant_levels
        return Reason(dimension, level, text, effect, significant, rate.rate, rate.n, rate.low, rate.high, label)

    def _known_landmark(self, landmark: int) -> int | None:
        """The largest landmark with closed examples at or below `landmark` (None if there is none)."""
        key = ("known", landmark)
        if key not in self._memo:
            known = [age for age in self.ages.table.index if age <= landmark]
            self._memo[key] = max(known) if known else None
        return self._memo[key]

    def age_rate(self, landmark: int) -> float:
        known = self._known_landmark(landmark)
        return float(self.ages.table.at[known, "raw"]) if known is not None else self.overall

    def age_shift(self, landmark: int) -> float:
        """The shrunk log-odds shift of deals still open at this age, against the overall rate."""
        known = self._known_landmark(landmark)
        return float(self.ages.table.at[known, "log_odds_shift"]) if known is not None else 0.0

    def age_reason(self, age_days: int, landmark: int, effect: float) -> Reason:
        known = self._known_landmark(landmark)
        if known is None:
            return Reason("age", str(landmark), f"Open {age_days} days", effect, False, label=f"Open {age_days} days")
        rate = self._age_rate(known)
        text = (
            f"Open {age_days} days; deals still open at {known} days won {rate.rate:.0%} "
            f"(n={rate.n:,}; 95% CI {rate.low * 100:.0f}–{rate.high:.0%}) vs {self.overall:.0%} overall"
        )
        significant = not (rate.low <= self.overall <= rate.high)
        return Reason(
            "age",
            str(known),
            text,
            effect,
            significant,
            rate.rate,
            rate.n,
            rate.low,
            rate.high,
            f"Open {age_days} days",
        )

    def _age_rate(self, landmark: int):
        key = ("rate", landmark)
        if key not in self._memo:
            row = self.ages.table.loc[landmark]
            self._memo[key] = wilson(int(row["wins"]), int(row["n"]), self.confidence)
        return self._memo[key]

    def to_dict(self) -> dict:
        def rows(shrunk: ShrunkRates) -> list[dict]:
            return [
                {
                    "level": str(level),
                    "wins": int(r.wins),
                    "n": int(r.n),
                    "raw": float(r.raw),
                    "shrunk": float(r.shrunk),
                }
                for level, r in shrunk.table.iterrows()
            ]

        return {
            "overall": self.overall,
            "closed_deals": self.closed_deals,
            # null: an infinite prior, i.e. the levels differ no more than chance explains (JSON has no inf)
            "prior_strength": {
                d: (None if math.isinf(s.prior_strength) else s.prior_strength) for d, s in self.attributes.items()
            },
            "attributes": {d: rows(s) for d, s in self.attributes.items()},
            "ages": rows(self.ages),
        }


def gather_evidence(
    history: pd.DataFrame, space: FeatureSpace, segments: list[SegmentResult] = (), confidence: float = 0.95
) -> Evidence:
    won = history["won"].astype(float).to_numpy()
    overall = float(won.mean()) if len(won) else float("nan")
    per_dimension = {}
    for dimension in space.dimensions:
        grouped = space.level_counts(history, dimension, won)
        per_dimension[dimension] = shrink(grouped["sum"], grouped["count"], overall)
    cycle = history["sales_cycle_days"].to_numpy(dtype=float)
    still_open = {lm: still_open_at(cycle, lm) for lm in space.landmarks}
    by_age = pd.DataFrame(
        {"sum": [won[m].sum() for m in still_open.values()], "count": [int(m.sum()) for m in still_open.values()]},
        index=list(still_open),
    )
    by_age = by_age[by_age["count"] > 0]
    ages = shrink(by_age["sum"], by_age["count"], overall)
    significant = frozenset((s.dimension, s.value) for s in segments if s.status == SIGNIFICANT)
    return Evidence(overall, len(history), per_dimension, ages, space, significant, confidence)

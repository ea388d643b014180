"""What history says about each attribute an open deal has: win rates with n, raw and shrunk.

Built once per refresh from the closed deals (one row per deal) and their landmarked examples (for age),
it gives every score its plain-word reasons ("Outbound lead: 41% won (n=1,246) vs 45% overall") and, when
the driver model has no skill, the empirical-Bayes probabilities themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from engine.features import deal_attributes, landmark_examples
from engine.settings import SEGMENT_FIELDS
from engine.shrinkage import ShrunkRates, shrink

ATTRIBUTE_DIMENSIONS = (*SEGMENT_FIELDS, "amount_band")
LABELS = {
    "lead_source": "{} lead", "industry": "{} industry", "region": "{} region", "product_type": "{} product",
    "sales_rep_id": "Owner {}", "amount_band": "Deal size {}",
}  # fmt: skip


@dataclass(frozen=True)
class Reason:
    """One reason behind a score, with the numbers that back it; `effect` < 0 means it lowers P(win)."""

    dimension: str
    level: str
    text: str
    effect: float
    significant: bool

    def to_dict(self) -> dict:
        return {"dimension": self.dimension, "level": self.level, "text": self.text, "effect": self.effect,
                "significant": self.significant}  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    overall: float
    closed_deals: int
    attributes: dict[str, ShrunkRates]
    ages: ShrunkRates
    """Indexed by landmark age (days): win rate of deals still open at that age."""
    landmarks: list[int]

    def segment_text(self, dimension: str, level: str) -> str:
        label = LABELS[dimension].format(level)
        table = self.attributes[dimension].table
        if level not in table.index:
            return f"{label}: no closed deals yet"
        row = table.loc[level]
        return f"{label}: {row['raw']:.0%} won (n={int(row['n']):,}) vs {self.overall:.0%} overall"

    def age_text(self, age_days: int, landmark: int) -> str:
        row = self.ages.table.loc[landmark]
        return f"Open {age_days} days; deals still open at {landmark} days won {row['raw']:.0%} (n={int(row['n']):,})"

    def to_dict(self) -> dict:
        def rows(shrunk: ShrunkRates) -> list[dict]:
            return [{"level": str(level), "wins": int(r.wins), "n": int(r.n), "raw": float(r.raw),
                     "shrunk": float(r.shrunk)} for level, r in shrunk.table.iterrows()]  # fmt: skip

        return {"overall": self.overall, "closed_deals": self.closed_deals,
                "prior_strength": {d: s.prior_strength for d, s in self.attributes.items()},
                "attributes": {d: rows(s) for d, s in self.attributes.items()}, "ages": rows(self.ages)}  # fmt: skip


def gather_evidence(history: pd.DataFrame, landmarks: list[int], amount_edges: list[float]) -> Evidence:
    attributes = deal_attributes(history, amount_edges)
    won = history["won"].astype(float).to_numpy()
    overall = float(won.mean()) if len(won) else float("nan")
    per_dimension = {}
    for dimension in ATTRIBUTE_DIMENSIONS:
        grouped = pd.Series(won, index=attributes.index).groupby(attributes[dimension]).agg(["sum", "count"])
        per_dimension[dimension] = shrink(grouped["sum"], grouped["count"], overall)
    examples = landmark_examples(history, landmarks, amount_edges)
    by_age = examples.groupby("landmark")["won"].agg(["sum", "count"]).reindex(landmarks, fill_value=0)
    by_age = by_age[by_age["count"] > 0]
    ages = shrink(by_age["sum"], by_age["count"], overall)
    return Evidence(overall, len(history), per_dimension, ages, landmarks)


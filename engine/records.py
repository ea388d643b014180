"""The records that cross layers: what the engine says about an open deal, as `alerts/` and `bot/` read it.

Typed and immutable. They are named tuples rather than frozen dataclasses because a refresh makes one per open deal
and one per shown reason, and a tuple is made several times faster. The store decodes its rows into these once (see
`engine.store.records`); `to_json` gives the JSON form every `--json` output uses.
"""

from __future__ import annotations

from typing import NamedTuple

TYPICAL = "typical"
"""A deal's standing when its risk is close to the base risk (see `engine.scoring`)."""

WITHIN_CHANCE, BEYOND_CHANCE = "within chance", "beyond chance"


class Reason(NamedTuple):
    """One thing that moves a deal's P(win), with the numbers that back it (a named tuple: a refresh makes one per
    shown reason of every open deal, and a tuple is made several times faster than a frozen dataclass).

    `effect` is the change in log-odds of winning against a typical deal of the same age (< 0 lowers P(win)).
    `qualifier` is computed from the evidence's own test, never written by hand: "beyond chance" or
    "within chance".
    """

    dimension: str
    level: str
    text: str
    effect: float
    significant: bool
    rate: float | None = None
    n: int = 0
    low: float | None = None
    high: float | None = None
    label: str = ""
    """What the reason is about, in a few words ("Outbound lead", "Open 143 days")."""

    @property
    def qualifier(self) -> str:
        return BEYOND_CHANCE if self.significant else WITHIN_CHANCE

    def to_dict(self) -> dict:
        return {
            "dimension": self.dimension,
            "level": self.level,
            "text": self.text,
            "effect": self.effect,
            "significant": self.significant,
            "qualifier": self.qualifier,
            "rate": self.rate,
            "n": self.n,
            "low": self.low,
            "high": self.high,
            "label": self.label,
        }


class ScoredDeal(NamedTuple):
    """One open deal's score (a named tuple, for the same reason as `Reason`: one per open deal)."""

    deal_id: str
    p_win: float
    risk: float
    method: str
    model_id: int | None
    reasons: tuple[Reason, ...]
    deal_amount: float
    age_days: int
    deal_stage: str | None
    sales_rep_id: str
    deal_name: str | None
    base_p_win: float | None = None
    """Win rate of all deals closed by the as-of date: the base rate every risk is compared with."""
    age_p_win: float | None = None
    """Win rate of closed deals that were still open at this deal's age."""
    standing: str = TYPICAL
    """above | typical | below the base risk, or stale (older than history supports)."""
    summary: str = ""
    """One computed sentence: how this deal's risk compares with the base risk, and what drives it."""
    stale: bool = False

    def to_json(self) -> dict:
        """The score as JSON values: its reasons as objects with their qualifier."""
        return {**self._asdict(), "reasons": [reason.to_dict() for reason in self.reasons]}

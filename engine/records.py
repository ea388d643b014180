"""The records that cross layers: what the engine says about an open deal, as `alerts/` and `bot/` read it.

Typed and immutable. They are named tuples rather than frozen dataclasses because a refresh makes one per open deal
and one per shown reason, and a tuple is made several times faster. The store decodes its rows into these once (see
`engine.store.records`); `to_json` gives the JSON form every `--json` output uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from types import MappingProxyType
from typing import Any, NamedTuple

from salesintel.engine.segments import SegmentResult
from salesintel.engine.stats import Rate

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


def frozen(value: Any) -> Any:
    """A JSON value made immutable all the way down: objects become read-only mappings, arrays tuples."""
    if isinstance(value, dict):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    return value


def thawed(value: Any) -> Any:
    """`frozen`'s inverse: plain dicts and lists again, for JSON."""
    if isinstance(value, Mapping):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thawed(item) for item in value]
    return value


EMPTY: Mapping[str, Any] = MappingProxyType({})


def _section():
    return dataclass_field(default_factory=lambda: EMPTY)


@dataclass(frozen=True)
class MetricsSummary:
    """What one refresh found, from the engine to every surface: one typed, immutable record.

    The win rate and the segment findings are typed records (`Rate`, `SegmentResult`); every other section is the
    engine's JSON as computed, frozen (read-only mappings and tuples), its keys documented in docs/statistics.md.
    The store keeps it as JSON (`to_json` / `from_json`, the only place it is serialised); `metrics --json` prints
    `to_json()`. Sections a refresh did not write (an older salesintel's) are None or empty.
    """

    as_of: str
    overall: Rate
    segments: tuple[SegmentResult, ...]
    statement: str
    stage_known: bool = False
    settings: Mapping[str, Any] = _section()
    coverage: Mapping[str, Any] = _section()
    fields: Mapping[str, Any] = _section()
    comparisons: int = 0
    significant: int = 0
    periods: Mapping[str, Any] = _section()
    velocity: Mapping[str, Any] = _section()
    open_pipeline: Mapping[str, Any] = _section()
    pqi: Mapping[str, Any] = _section()
    res: Mapping[str, Any] = _section()
    trend: tuple = ()
    warnings: tuple = ()
    snapshot: Mapping[str, Any] = _section()
    model: Mapping[str, Any] = _section()
    evidence: Mapping[str, Any] | None = None
    drift: Mapping[str, Any] | None = None
    anomalies: Mapping[str, Any] = _section()
    risk_rule: Mapping[str, Any] = _section()
    """The one risk rule (threshold, source, active, reason…): `engine.risk_rule`."""
    extra: Mapping[str, Any] = _section()
    """Sections this salesintel does not name (written by a newer one), kept and printed as they were."""

    @classmethod
    def from_json(cls, values: dict) -> MetricsSummary:
        names = {f.name for f in fields(cls)} - {"extra", "overall", "segments"}
        return cls(
            overall=Rate.from_dict(values["overall"]),
            segments=tuple(SegmentResult.from_dict(s) for s in values.get("segments") or ()),
            **{name: frozen(values[name]) for name in names if name in values and values[name] is not None},
            extra=frozen({k: v for k, v in values.items() if k not in names | {"overall", "segments"}}),
        )

    def to_json(self) -> dict:
        """The JSON object the store keeps and `metrics --json` prints (sections in the engine's order)."""
        values = {}
        for name in JSON_ORDER:
            value = getattr(self, name)
            if name == "overall":
                value = value.to_dict()
            elif name == "segments":
                value = [segment.to_dict() for segment in value]
            values[name] = thawed(value)
        return {**values, **thawed(self.extra)}


JSON_ORDER = (
    "as_of",
    "stage_known",
    "settings",
    "coverage",
    "fields",
    "overall",
    "segments",
    "comparisons",
    "significant",
    "statement",
    "periods",
    "velocity",
    "open_pipeline",
    "pqi",
    "res",
    "trend",
    "warnings",
    "snapshot",
    "model",
    "evidence",
    "drift",
    "anomalies",
    "risk_rule",
)
"""The sections in the order the engine writes them (`engine.metrics`, then `engine.refresh`)."""

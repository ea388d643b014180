"""Which fields may speak: the feature space of one refresh, and every field kept out of it, with the reason.

A CRM export mixes fields known when a deal is created (industry, competitor), fields that change over its life
(stage, forecast category) and fields that exist only once it has closed (close reason, days to close). Only the
first kind may be used as-is for findings and scoring: the others describe how a deal ended, so a "finding" on
them is a tautology and a model that uses them predicts the past. Declarations are not enough — exports label
columns loosely — so the data is checked too. A field is kept out when:

- it is declared `changing` or `close` (built in: stage, close date, days to close);
- it is recorded on closed deals but (almost) never on open ones (filled in at close);
- its levels are (nearly) pure in outcome ("Closed Won" is 100% won);
- on its own it nearly separates won from lost (single-field AUC ≥ `leak_auc`, e.g. an amount of 0 on every lost
  deal): no honest sales signal is that strong;
- it follows the close date or the days to close (a close-quarter or cycle-length band);
- it has one value for (almost) every deal, or one value only.

The space also fixes the age landmarks (from the closed deals' cycle lengths unless configured) and the oldest age
history supports: an open deal older than that is "stale — likely dead".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from salesintel.engine import background
from salesintel.engine.bands import amount_band, number_band
from salesintel.engine.distinct import counts_by_level, text_codes
from salesintel.engine.settings import MetricsSettings, ModelSettings

MISSING_LEVEL = "(not recorded)"
PURE_RATE = 0.02
"""A level whose win rate is within this of 0% or 100% is pure in outcome."""
PURE_SHARE = 0.5
"""A field is pure in outcome when pure levels (n ≥ 10) hold at least this share of its closed deals."""
FOLLOWS_CLOSE = 0.8
"""Share of closed deals whose close date (or cycle length) only their own value's range holds, above which a field
is taken to be a band of the close date (or of the days to close)."""
AUDIT_SAMPLE = 20_000
"""Closed deals the band checks look at (a fixed sample keeps the audit fast on millions of deals)."""
AUTO_LANDMARK_QUANTILES = (0.33, 0.67, 0.9)
FALLBACK_LANDMARKS = (0, 30, 60, 90)
MIN_CYCLES = 20
"""Closed deals needed before landmarks and the stale age are read from the data (fewer: fixed fallbacks, no stale)."""


@dataclass(frozen=True)
class FieldInfo:
    """A deal field as the engine sees it: where it lives, how people name it, and when its value is known."""

    name: str
    """Column in the deals frame."""
    dimension: str
    """Column in the attribute frame: the field itself, or its band for a number."""
    label: str
    kind: str
    """category | number"""
    known: str
    """creation | changing | close"""
    level_format: str = ""
    """How a level reads in a reason, e.g. "{} lead"; empty means "Label level" (e.g. "Competitor Globex")."""
    source_kind: str = ""
    """The configured kind when the engine sees it differently: a boolean is a category with levels yes / no, a
    date a number of days after the deal was created (so "first meeting 3 days in" bands like any number)."""
    unit: str | None = None

    def values(self, deals: pd.DataFrame) -> pd.Series:
        """The field's values as the engine uses them (see `source_kind`)."""
        raw = deals[self.name]
        if self.source_kind == "boolean":
            return raw.astype(object).map({True: "yes", False: "no"})
        if self.source_kind == "date":
            return (pd.to_datetime(raw) - deals["created_date"]).dt.days.astype(float)
        return raw

    def level_text(self, level: str) -> str:
        if level == MISSING_LEVEL:
            return f"{self.label} not recorded"
        return self.level_format.format(level) if self.level_format else f"{self.label} {level}"


BUILTIN_FIELDS = (
    FieldInfo("industry", "industry", "Industry", "category", "creation", "{} industry"),
    FieldInfo("region", "region", "Region", "category", "creation", "{} region"),
    FieldInfo("product_type", "product_type", "Product", "category", "creation", "{} product"),
    FieldInfo("lead_source", "lead_source", "Lead source", "category", "creation", "{} lead"),
    FieldInfo("sales_rep_id", "sales_rep_id", "Owner", "category", "creation", "Owner {}"),
    FieldInfo("deal_amount", "amount_band", "Deal size", "number", "creation", "Deal size {}"),
    FieldInfo("deal_stage", "deal_stage", "Stage", "category", "changing"),
    FieldInfo("sales_cycle_days", "cycle_band", "Days to close", "number", "close"),
    FieldInfo("closed_date", "close_quarter", "Close date", "date", "close"),
)
"""The canonical fields, in the order reports list them."""


@dataclass(frozen=True)
class Exclusion:
    """A field kept out of findings and the model, and why, in words a user can check."""

    field: str
    label: str
    reason: str

    def to_dict(self) -> dict:
        return {"field": self.field, "label": self.label, "reason": self.reason}


@dataclass(frozen=True)
class FeatureSpace:
    """The creation-time fields one refresh may use, the bands of its numbers, and its age landmarks."""

    fields: tuple[FieldInfo, ...]
    excluded: tuple[Exclusion, ...] = ()
    bands: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Band edges per number field (by field name)."""
    landmarks: tuple[int, ...] = FALLBACK_LANDMARKS
    supported_age: int | None = None
    """The oldest age (days) closed deals support: an open deal older than this is stale — likely dead."""
    supported_quantile: float = 0.98
    landmarks_from_data: bool = False
    """True when the landmarks are quantiles of closed cycle lengths (the last one the 90th percentile)."""
    _memo: dict = field(default_factory=dict, repr=False, compare=False)
    """Attribute frames already built in this refresh, by frame and fields: segments, evidence, the model, drivers
    and anomalies all cut the same history, and banding a million deals' text once is enough."""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_memo": {}}  # a stored model keeps its fields, not this refresh's frames

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(f.dimension for f in self.fields)

    def numbers(self, deals: pd.DataFrame) -> dict[str, np.ndarray]:
        """Number fields' raw values (dates as days after creation), by field name."""
        return {f.name: f.values(deals).to_numpy(dtype=float) for f in self.fields if f.kind == "number"}

    def info(self, dimension: str) -> FieldInfo:
        return next(f for f in self.fields if f.dimension == dimension)

    def level_text(self, dimension: str, level: str) -> str:
        return self.info(dimension).level_text(level)

    def attributes(self, deals: pd.DataFrame) -> pd.DataFrame:
        """One text column per dimension (numbers banded), missing values as their own level.

        Columns are plain object arrays of str: scikit-learn's encoder and pandas' counts are several times slower
        on pandas' string dtype, which `astype(str)` gives under pandas 3. The caller gets its own (shallow) copy.
        """
        return self._built(deals)[0].copy(deep=False)

    def level_counts(self, deals: pd.DataFrame, dimension: str, won: np.ndarray) -> pd.DataFrame:
        """Wins ("sum", summed as `won`'s type) and deals ("count") per level of `dimension` (missing values as
        their level), levels sorted: what grouping `won` by the attribute column gives, counted from its codes."""
        codes, levels = self._built(deals)[1][dimension]
        return counts_by_level(codes, levels, won, dimension)

    def _built(self, deals: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        key = (id(deals), self.fields, tuple(sorted(self.bands.items())))
        cached = self._memo.get(key)
        if cached is None or cached[0] is not deals:  # the frame itself is held, so its id cannot be reused
            cached = (deals, *self._attributes(deals))
            self._memo[key] = cached
        return cached[1], cached[2]

    def _attributes(self, deals: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """The attribute frame, and per dimension each row's code into its distinct level texts."""
        frame, codes = pd.DataFrame(index=deals.index), {}
        for info in self.fields:
            values = info.values(deals)
            if info.kind == "number":
                edges = list(self.bands.get(info.name, ()))
                values = amount_band(values, edges) if info.name == "deal_amount" else number_band(values, edges)
            # Each distinct value becomes text once and the rows share it: a million str() calls per field cost
            # more than the rest of the banding.
            row_codes, levels = text_codes(values, MISSING_LEVEL)
            frame[info.dimension] = pd.Series(levels[row_codes], index=deals.index, dtype=object)
            codes[info.dimension] = (row_codes, levels)
        return frame, codes

    def without(self, dimension: str, reason: str) -> FeatureSpace:
        """This space with one field moved to the excluded list (a leak found by the model)."""
        info = self.info(dimension)
        kept = tuple(f for f in self.fields if f.dimension != dimension)
        return replace(self, fields=kept, excluded=(*self.excluded, Exclusion(info.name, info.label, reason)))

    def stale(self, ages: pd.Series) -> pd.Series:
        """True for ages older than history supports: the one stale rule every score and figure uses."""
        if self.supported_age is None:
            return pd.Series(False, index=ages.index)
        return ages > self.supported_age

    def exclusion_reason(self, field_name: str) -> str | None:
        """Why `field_name` was kept out, or None if it was not."""
        return next((e.reason for e in self.excluded if e.field == field_name), None)

    def to_dict(self) -> dict:
        return {
            "used": [{"field": f.name, "label": f.label, "kind": f.kind} for f in self.fields],
            "excluded": [e.to_dict() for e in self.excluded],
            "landmarks": list(self.landmarks),
            "supported_age": self.supported_age,
            "supported_quantile": self.supported_quantile,
            "landmarks_from_data": self.landmarks_from_data,
        }


def candidate_fields(extra_fields: dict[str, dict]) -> list[FieldInfo]:
    """The built-in fields plus a snapshot's extra fields (as stored with it)."""
    return [*BUILTIN_FIELDS, *(_extra_info(name, spec) for name, spec in extra_fields.items())]


ENGINE_KINDS = {"category": "category", "boolean": "category", "number": "number", "date": "number"}


def _extra_info(name: str, spec: dict) -> FieldInfo:
    kind = ENGINE_KINDS[spec["kind"]]
    label = spec.get("label") or name
    level_format = f"{label} {{}} days after creation" if spec["kind"] == "date" else ""
    if spec["kind"] == "number" and spec.get("unit"):
        level_format = f"{label} {{}} {spec['unit']}"
    return FieldInfo(
        name,
        f"{name}_band" if kind == "number" else name,
        label,
        kind,
        spec["known"],
        level_format,
        spec["kind"] if spec["kind"] != kind else "",
        spec.get("unit"),
    )


@dataclass(frozen=True)
class AuditSettings:
    min_sample: int
    amount_edges: tuple[float, ...]
    landmarks: tuple[int, ...] | None
    """Configured landmarks, or None to take them from the data."""
    leak_auc: float
    stale_quantile: float

    @classmethod
    def of(cls, metrics: MetricsSettings, model: ModelSettings) -> AuditSettings:
        landmarks = None if model.landmarks == "auto" else tuple(model.landmarks)
        return cls(metrics.min_sample, tuple(metrics.amount_bands), landmarks, model.leak_auc, metrics.stale_quantile)


def build_feature_space(
    candidates: list[FieldInfo],
    history: pd.DataFrame,
    open_deals: pd.DataFrame,
    settings: AuditSettings,
    fork: bool = False,
) -> FeatureSpace:
    """Audit every candidate field against the closed deals (and the open ones) as of a date.

    The fields are audited independently; with `fork`, every other one is audited in a forked process
    (`engine.background`) while this one audits the rest, so the audit of a large export uses both cores."""
    present = [info for info in candidates if info.name in history.columns]
    theirs = background.start(
        _exclusion_reasons, present[1::2], history, open_deals, settings, fork=fork and len(present) > 1
    )
    reasons = dict(zip(present[0::2], _exclusion_reasons(present[0::2], history, open_deals, settings)))
    reasons.update(zip(present[1::2], theirs.result()))
    used, excluded, bands = [], [], {}
    for info in present:
        reason = reasons[info]
        if reason:
            excluded.append(Exclusion(info.name, info.label, reason))
            continue
        used.append(info)
        if info.kind == "number":
            bands[info.name] = (
                settings.amount_edges if info.name == "deal_amount" else _quantile_edges(info.values(history))
            )
    cycles = history["sales_cycle_days"].dropna().astype(float) if len(history) else pd.Series(dtype=float)
    landmarks = settings.landmarks or _landmarks_from(cycles)
    from_data = settings.landmarks is None and len(cycles) >= MIN_CYCLES
    supported = int(math.ceil(cycles.quantile(settings.stale_quantile))) if len(cycles) >= MIN_CYCLES else None
    if supported is not None:
        supported = max(supported, landmarks[-1])
    return FeatureSpace(
        tuple(used), tuple(excluded), bands, tuple(landmarks), supported, settings.stale_quantile, from_data
    )


def _landmarks_from(cycles: pd.Series) -> tuple[int, ...]:
    if len(cycles) < MIN_CYCLES:
        return FALLBACK_LANDMARKS
    points = sorted({int(round(q)) for q in cycles.quantile(list(AUTO_LANDMARK_QUANTILES)) if round(q) >= 1})
    return (0, *points)


def _quantile_edges(values: pd.Series) -> tuple[float, ...]:
    known = values.dropna().astype(float)
    if known.nunique() < 2:
        return ()
    edges = sorted(set(float(e) for e in known.quantile([0.25, 0.5, 0.75])))
    return tuple(e for e in edges if e > known.min())


def _exclusion_reasons(
    fields: list[FieldInfo], history: pd.DataFrame, open_deals: pd.DataFrame, settings: AuditSettings
) -> list[str | None]:
    """Why each field is excluded, or None (pure: may run in a forked process)."""
    return [_exclusion_reason(info, history, open_deals, settings) for info in fields]


def _exclusion_reason(
    info: FieldInfo, history: pd.DataFrame, open_deals: pd.DataFrame, settings: AuditSettings
) -> str | None:
    if info.known == "close":
        return "known only once a deal has closed"
    if info.known == "changing":
        return "changes over a deal's life: a snapshot shows its latest value, not its value at the time"
    values = info.values(history)
    won = history["won"].to_numpy(dtype=bool)
    recorded = values.notna()
    if not len(history) or recorded.sum() == 0:
        return "no closed deal has a value"
    if len(open_deals) >= 20 and info.name in open_deals:
        open_share = float(open_deals[info.name].notna().mean())
        closed_share = float(recorded.mean())
        if closed_share >= 0.5 and open_share <= 0.05:
            return (
                f"recorded on {closed_share:.0%} of closed deals but {open_share:.0%} of open ones: filled in at close"
            )
    if info.kind == "category":
        reason = _category_reason(values, won, history, settings)
        if reason:
            return reason
    elif info.kind == "number":
        if values.dropna().nunique() <= 1:
            return "has a single value (or none) on every deal"
    positions = _audit_sample(len(history))
    sample = values.iloc[positions] if positions is not None else values
    auc = single_field_auc(info, sample, won[positions] if positions is not None else won)
    if auc is not None and auc >= settings.leak_auc:
        return (
            f"separates won from lost almost perfectly on its own (AUC {auc:.3f}): it likely encodes the "
            "outcome (e.g. a value set only when a deal is won or lost)"
        )
    return None


def _category_reason(values: pd.Series, won: np.ndarray, history: pd.DataFrame, settings: AuditSettings) -> str | None:
    counts = _level_counts(values, won)
    distinct, recorded = len(counts), int(counts["count"].sum())
    if distinct <= 1:
        return "has a single value (or none) on every deal"
    if distinct > max(50, 0.5 * recorded):
        return f"almost one value per deal ({distinct:,} values): an identifier, not a segment"
    rates = counts["sum"] / counts["count"]
    pure = counts[(counts["count"] >= 10) & ((rates <= PURE_RATE) | (rates >= 1 - PURE_RATE))]
    if pure["count"].sum() >= PURE_SHARE * recorded:
        examples = ", ".join(
            f"'{level}' {rates[level]:.0%} won (n={int(n):,})" for level, n in pure["count"].nlargest(2).items()
        )
        return f"its values are (nearly) pure in outcome: {examples}"
    positions = _audit_sample(len(history))
    sample = history.iloc[positions] if positions is not None else history
    sampled = values.iloc[positions] if positions is not None else values
    closed_days = (sample["closed_date"] - pd.Timestamp("2000-01-01")).dt.days.astype(float)
    created_days = (sample["created_date"] - pd.Timestamp("2000-01-01")).dt.days.astype(float)
    by_close = _share_determined(closed_days, sampled)
    if by_close >= FOLLOWS_CLOSE and by_close > _share_determined(created_days, sampled) + 0.05:
        return (
            f"follows the close date ({by_close:.0%} of closed deals fall in their value's close-date range only): "
            "a close-period band, known only at close"
        )
    by_cycle = _share_determined(sample["sales_cycle_days"].astype(float), sampled)
    if by_cycle >= FOLLOWS_CLOSE:
        return (
            f"follows the days to close ({by_cycle:.0%} of closed deals fall in their value's cycle-length range "
            "only): a cycle-length band, known only at close"
        )
    return None


def _level_counts(values: pd.Series, won: np.ndarray) -> pd.DataFrame:
    """Wins ("sum") and deals ("count") per recorded level as text, levels sorted (as a groupby gives them).

    Counted from codes, each distinct value made text once: the whole closed history passes through here for
    every categorical field."""
    codes, levels = text_codes(values, None)
    return counts_by_level(codes, levels, won, "level")


@functools.lru_cache(maxsize=4)
def _audit_sample(rows: int) -> np.ndarray | None:
    """Positions of the closed deals the audit's sampled checks look at (the same for every field; what
    `DataFrame.sample(AUDIT_SAMPLE, random_state=0)` picks), or None to look at all of them."""
    if rows <= AUDIT_SAMPLE:
        return None
    positions = np.random.RandomState(0).choice(rows, size=AUDIT_SAMPLE, replace=False)
    positions.setflags(write=False)
    return positions


def _share_determined(numbers: pd.Series, groups: pd.Series) -> float:
    """The share of deals whose number falls inside the (1st–99th percentile) range of their own level and of no
    other level: near 1 when the levels cut the number into bands (a close quarter of the close date), near 0 when
    levels merely shift it (Enterprise deals take longer, but their range overlaps everyone's)."""
    frame = pd.DataFrame({"x": numbers.to_numpy(), "g": groups.astype(object).to_numpy()}).dropna()
    if len(frame) < 20 or frame["g"].nunique() < 2:
        return 0.0
    bounds = frame.groupby("g")["x"].quantile([0.01, 0.99]).unstack()
    inside = (frame["x"].to_numpy()[:, None] >= bounds[0.01].to_numpy()) & (
        frame["x"].to_numpy()[:, None] <= bounds[0.99].to_numpy()
    )
    own = bounds.index.get_indexer(frame["g"])
    alone = inside[np.arange(len(frame)), own] & (inside.sum(axis=1) == 1)
    return float(alone.mean())


def single_field_auc(info: FieldInfo, values: pd.Series, won: np.ndarray) -> float | None:
    """How well this field alone ranks won above lost (or below: the larger side), on closed deals."""
    if len(np.unique(won)) < 2:
        return None
    if info.kind == "number":
        numbers = values.astype(float)
        if numbers.notna().sum() == 0:
            return None
        score = numbers.fillna(numbers.median()).to_numpy()
    else:
        levels = values.astype(object).where(values.notna(), MISSING_LEVEL).astype(str)
        stats = pd.DataFrame({"level": levels, "won": won}).groupby("level")["won"].agg(["mean", "count"])
        rate = stats["mean"].where(stats["count"] >= 10, won.mean())
        score = levels.map(rate).to_numpy(dtype=float)
    if np.all(score == score[0]):
        return 0.5
    auc = float(roc_auc_score(won, score))
    return max(auc, 1 - auc)

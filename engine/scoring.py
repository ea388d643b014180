"""Risk scores for every open deal as of a date: P(win), risk, the method behind it, and what drives it.

Three methods, chosen per refresh and named on every score:
- the driver model, when it beat the base rate on the time-ordered holdout;
- empirical-Bayes segment rates (shrunk toward the overall rate) combined in log-odds with the age rate,
  when the model has no skill;
- the configured rule-based defaults, when there are too few closed deals for either.

Reasons are what actually moves *this* deal's P(win): its age (the win rate of deals still open at its age
against the base rate) and, per field, the model's contribution for this deal against a typical deal of the same
age (coefficient of its level minus the mean coefficient at that age), or the shrunk segment shift. Each carries
its evidence (win rate, n, interval) and a qualifier computed from a test. Whether the deal stands out at all is
computed too (`standing`): a deal whose risk is materially above the base risk always names what drives it —
its age alone is a valid answer, and says so.

A deal older than history supports (`FeatureSpace.supported_age`) is stale — likely dead: it is never scored above
the win rate of the oldest landmark, and every surface shows it apart from the live pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from salesintel.engine.asof import AsOfView
from salesintel.engine.evidence import Evidence
from salesintel.engine.features import open_deal_features
from salesintel.engine.fields import FeatureSpace
from salesintel.engine.model import TrainedModel
from salesintel.engine.quality import rule_based_win_probability
from salesintel.engine.records import TYPICAL, Reason, ScoredDeal
from salesintel.engine.settings import MetricsSettings, ModelSettings

METHOD_MODEL = "driver model"
"""A score's method starts with this and names the chosen family, e.g. "driver model (gradient-boosted trees,
calibrated)"."""
METHOD_SHRUNK = "segment win rates shrunk toward the overall rate (the model has no skill)"
METHOD_SHRUNK_NO_MODEL = (
    "segment win rates shrunk toward the overall rate (no model: too few closed deals to train one)"
)
METHOD_SHRUNK_REFUSED = "segment win rates shrunk toward the overall rate (the model was refused as a likely leak)"
METHOD_AGE_ONLY = "win rate of deals still open at the same age (no field is left to use)"
METHOD_RULES = "rule-based default (too few closed deals for statistics)"
MATERIAL = 1.1
"""Risk at least this many times the base risk is "above"; at most its inverse, "below"; between, "typical"."""
ABOVE, BELOW, STALE = "above", "below", "stale"
"""Standings besides `TYPICAL` (see `engine.records`)."""
RULES_SUMMARY = "Too few closed deals for statistics: P(win) is the configured rule-based default."


class ScoredDeals(Sequence):
    """Every open deal's score, held by column: what a refresh computes and the store writes.

    A million-deal pipeline would otherwise become a million `ScoredDeal` objects, each with its reason objects, turned
    into dicts and then into JSON. Reasons are shared instead: `catalogue` holds each distinct reason once (with
    effect 0) and each deal refers to the ones it shows by position, with its own effect. Indexing still gives one
    `ScoredDeal`, built when asked for.
    """

    def __init__(
        self,
        method: str,
        model_id: int | None,
        base_p_win: float | None,
        columns: dict,
        reason_refs: list[tuple[tuple[int, float], ...]],
        catalogue: list[Reason],
    ):
        self.method, self.model_id, self.base_p_win = method, model_id, base_p_win
        self.deal_id: list[str] = columns["deal_id"]
        self.p_win: np.ndarray = columns["p_win"]
        self.deal_amount: np.ndarray = columns["deal_amount"]
        self.age_days: np.ndarray = columns["age_days"]
        self.deal_stage: list[str | None] = columns["deal_stage"]
        self.sales_rep_id: list[str] = columns["sales_rep_id"]
        self.deal_name: list[str | None] = columns["deal_name"]
        self.age_p_win: list[float | None] = columns["age_p_win"]
        self.standing: list[str] = columns["standing"]
        self.summary: list[str] = columns["summary"]
        self.stale: np.ndarray = columns["stale"]
        self.reason_refs, self.catalogue = reason_refs, catalogue

    @property
    def risk(self) -> np.ndarray:
        return 1 - self.p_win

    def __len__(self) -> int:
        return len(self.deal_id)

    def __getitem__(self, position: int) -> ScoredDeal:
        probability = float(self.p_win[position])
        return ScoredDeal(
            deal_id=self.deal_id[position],
            p_win=probability,
            risk=1 - probability,
            method=self.method,
            model_id=self.model_id,
            reasons=tuple(_with_effect(self.catalogue[k], effect) for k, effect in self.reason_refs[position]),
            deal_amount=float(self.deal_amount[position]),
            age_days=int(self.age_days[position]),
            deal_stage=self.deal_stage[position],
            sales_rep_id=self.sales_rep_id[position],
            deal_name=self.deal_name[position],
            base_p_win=self.base_p_win,
            age_p_win=self.age_p_win[position],
            standing=self.standing[position],
            summary=self.summary[position],
            stale=bool(self.stale[position]),
        )

    def frame(self) -> pd.DataFrame:
        """The scores' flat columns (no reasons), one row per deal, for measuring them against outcomes."""
        return pd.DataFrame(
            {
                "deal_id": self.deal_id,
                "p_win": self.p_win,
                "risk": self.risk,
                "deal_amount": self.deal_amount,
                "age_days": self.age_days,
                "stale": self.stale,
                "standing": self.standing,
                "method": self.method,
            }
        )


def score_open_deals(
    view: AsOfView,
    evidence: Evidence | None,
    model: TrainedModel | None,
    model_id: int | None,
    space: FeatureSpace,
    model_settings: ModelSettings,
    metrics: MetricsSettings,
) -> ScoredDeals:
    """Score `view.open`; deals are in the same order as its rows."""
    open_deals = view.open
    base = evidence.overall if evidence is not None and evidence.closed_deals else None
    if open_deals.empty:
        return _no_scores(base)
    features = open_deal_features(open_deals, space)  # the refresh's space holds exactly the model's fields
    if evidence is None or evidence.closed_deals < metrics.min_sample:
        p_win = rule_based_win_probability(open_deals, view.history, view.stage_known, metrics).values.to_numpy()
        effects, method = None, METHOD_RULES
    elif model is not None and model.has_skill:
        p_win, method = model.predict(features), f"{METHOD_MODEL} ({model.family}, calibrated)"
        effects = _model_effects(features, model, evidence)
    else:
        method = _fallback_method(model, space)
        effects = _shrunk_effects(features, space, evidence)
        p_win = expit(logit(np.clip(evidence.overall, 1e-6, 1 - 1e-6)) + effects.sum(axis=1).to_numpy())
    p_win = np.asarray(p_win, dtype=float)
    stale = space.stale(open_deals["age_days"]).to_numpy(dtype=bool)
    if evidence is not None and evidence.closed_deals >= metrics.min_sample and stale.any():
        oldest = evidence.age_rate(space.landmarks[-1])
        p_win = np.where(stale, np.minimum(p_win, oldest), p_win)
    ages = open_deals["age_days"].to_numpy(dtype=int)
    landmarks = features["landmark"].to_numpy(dtype=int)
    if effects is not None:
        writer = _Explainer(evidence, space, model_settings.top_reasons)
        standing, summary, refs = writer.explain_all(ages, landmarks, features, effects, p_win, stale)
        catalogue = writer.catalogue
        rate_of = {int(lm): evidence.age_rate(int(lm)) for lm in np.unique(landmarks)}
        age_p_win = [rate_of[lm] for lm in landmarks.tolist()]
    else:
        standing = standings(1 - p_win, base, stale).tolist()
        summary = [
            _stale_sentence(space, age) if is_stale else RULES_SUMMARY
            for age, is_stale in zip(ages.tolist(), stale.tolist())
        ]
        refs, catalogue, age_p_win = [()] * len(ages), [], [None] * len(ages)
    columns = {
        "deal_id": open_deals["deal_id"].to_numpy(dtype=object).tolist(),
        "p_win": p_win,
        "deal_amount": open_deals["deal_amount"].to_numpy(dtype=float),
        "age_days": ages,
        "deal_stage": _texts_or_none(open_deals["deal_stage"], keep_empty=True),
        "sales_rep_id": [str(rep) for rep in open_deals["sales_rep_id"].to_numpy(dtype=object).tolist()],
        "deal_name": _texts_or_none(open_deals["deal_name"]) if "deal_name" in open_deals else [None] * len(ages),
        "age_p_win": age_p_win,
        "standing": standing,
        "summary": summary,
        "stale": stale,
    }
    model_or_none = model_id if method.startswith(METHOD_MODEL) else None
    return ScoredDeals(method, model_or_none, base, columns, refs, catalogue)


def _no_scores(base: float | None) -> ScoredDeals:
    empty = {
        name: [] for name in ("deal_id", "deal_stage", "sales_rep_id", "deal_name", "age_p_win", "standing", "summary")
    }
    arrays = {
        "p_win": np.zeros(0),
        "deal_amount": np.zeros(0),
        "age_days": np.zeros(0, dtype=int),
        "stale": np.zeros(0, dtype=bool),
    }
    return ScoredDeals("none (no open deals)", None, base, {**empty, **arrays}, [], [])


def _texts_or_none(column: pd.Series, keep_empty: bool = False) -> list[str | None]:
    """Text values, with missing ones (and empty ones, unless `keep_empty`) as None."""
    values = column.to_numpy(dtype=object).tolist()
    return [v if isinstance(v, str) and (v or keep_empty) else None for v in values]


def _fallback_method(model: TrainedModel | None, space: FeatureSpace) -> str:
    """Name the shrunk-rates method by why the model is not used, so no label claims what did not happen."""
    if not space.fields:
        return METHOD_AGE_ONLY
    if model is None:
        return METHOD_SHRUNK_NO_MODEL
    return METHOD_SHRUNK_REFUSED if model.refused else METHOD_SHRUNK


def _model_effects(features: pd.DataFrame, model: TrainedModel, evidence: Evidence) -> pd.DataFrame:
    """Per deal and field: the chosen model's contribution against a typical deal of the same age (see
    `engine.families`), plus the age effect from the evidence."""
    effects = model.contributions(features)
    effects["age"] = _age_effects(features["landmark"], evidence)
    return effects


def _shrunk_effects(features: pd.DataFrame, space: FeatureSpace, evidence: Evidence) -> pd.DataFrame:
    """Per deal and field: the shrunk segment shift (log-odds vs the overall rate); 0 where levels differ by chance."""
    effects = pd.DataFrame(index=features.index)
    for dimension in space.dimensions:
        levels = features[dimension]
        lookup = {level: evidence.attributes[dimension].shift(level) for level in levels.unique()}
        effects[dimension] = levels.map(lookup).astype(float)
    lookup = {landmark: evidence.age_shift(int(landmark)) for landmark in features["landmark"].unique()}
    effects["age"] = features["landmark"].map(lookup).astype(float)
    return effects


def _age_effects(landmarks: pd.Series, evidence: Evidence) -> pd.Series:
    overall = logit(np.clip(evidence.overall, 1e-6, 1 - 1e-6))
    lookup = {
        lm: float(logit(np.clip(evidence.age_rate(int(lm)), 1e-6, 1 - 1e-6)) - overall) for lm in landmarks.unique()
    }
    return landmarks.map(lookup).astype(float)


def standings(risk: np.ndarray, base_p_win: float | None, stale: np.ndarray) -> np.ndarray:
    """Whether each risk is materially above, about, or below the base risk, or stale (one rule for every surface)."""
    standing = np.full(len(risk), TYPICAL, dtype=object)
    if base_p_win is not None and 1 - base_p_win > 0:
        base_risk = 1 - base_p_win
        standing[risk >= MATERIAL * base_risk] = ABOVE
        standing[(risk < MATERIAL * base_risk) & (risk <= base_risk / MATERIAL)] = BELOW
    standing[np.asarray(stale, dtype=bool)] = STALE
    return standing


def _stale_sentence(space: FeatureSpace, age_days: int) -> str:
    return (
        f"Stale — likely dead: open {age_days} days, longer than {space.supported_quantile:.0%} of the deals that "
        f"ever closed took ({space.supported_age} days). History says nothing about deals this old: close it "
        f"out in the CRM or re-qualify it."
    )


def _with_effect(reason: Reason, effect: float) -> Reason:
    """`reason` with this deal's effect (built directly: `_replace` costs several times more, once per shown reason)."""
    return Reason(
        reason.dimension,
        reason.level,
        reason.text,
        float(effect),
        reason.significant,
        reason.rate,
        reason.n,
        reason.low,
        reason.high,
        reason.label,
    )


class _Explainer:
    """Turns deals' effects into their standing, summary and reasons. Each distinct reason is written once into
    `catalogue` (with effect 0); a deal's reasons are (position in the catalogue, this deal's effect) pairs."""

    def __init__(self, evidence: Evidence, space: FeatureSpace, limit: int):
        self.evidence, self.space, self.limit = evidence, space, limit
        self.catalogue: list[Reason] = []

    def _entries(self, dimension: str, features: pd.DataFrame, ages: np.ndarray, landmarks: np.ndarray):
        """(catalogue position per deal, evidence rate per deal) for one dimension: a reason per distinct level
        (or, for age, per distinct age and landmark: a few hundred among a million open deals)."""
        if dimension == "age":
            span = int(landmarks.max() - landmarks.min()) + 1
            key = (ages.astype(np.int64) - ages.min()) * span + (landmarks - landmarks.min())
            unique, position = np.unique(key, return_inverse=True)
            pairs = zip((unique // span + ages.min()).tolist(), (unique % span + landmarks.min()).tolist())
            reasons = [self.evidence.age_reason(age, landmark, 0.0) for age, landmark in pairs]
        else:
            position, unique = pd.factorize(features[dimension].to_numpy(dtype=object), use_na_sentinel=False)
            reasons = [self.evidence.attribute_reason(dimension, str(level), 0.0) for level in unique.tolist()]
        first = len(self.catalogue)
        self.catalogue.extend(reasons)
        rates = np.array([np.nan if r.rate is None else r.rate for r in reasons], dtype=float)
        position = np.asarray(position).reshape(-1)
        return first + position, rates[position]

    def explain_all(
        self,
        ages: np.ndarray,
        landmarks: np.ndarray,
        features: pd.DataFrame,
        effects: pd.DataFrame,
        p_win: np.ndarray,
        stale: np.ndarray,
    ) -> tuple[list[str], list[str], list[tuple]]:
        """(standings, summaries, reason references) of all deals. A reason is listed as lowering (raising) P(win)
        only when both the score's contribution and the evidence shown beside it point that way, so no line
        contradicts its own numbers.

        Everything but the final sentence is decided for all deals at once, as arrays: which reasons qualify, their
        order, the standing, and the text naming what drives a deal (written once per distinct set of reasons)."""
        base = self.evidence.overall
        effect = effects.to_numpy(dtype=float)
        entries = [self._entries(d, features, ages, landmarks) for d in effects.columns]
        entry = np.column_stack([position for position, _ in entries])
        rate = np.column_stack([rates for _, rates in entries])
        known = ~np.isnan(rate)
        lowers = (effect < -1e-9) & known & (rate < base)
        raises = (effect > 1e-9) & known & (rate > base)
        risk = 1 - p_win
        standing = standings(risk, base, stale)
        below, typical = standing == BELOW, standing == TYPICAL
        # Shown as lowering its chances: up to `limit` reasons, for every deal not below the base risk. Shown as
        # raising them: up to `limit` for a deal below the base risk, and up to two beside what lowers a typical one.
        down = _Chosen(np.where(lowers, effect, np.inf), lowers.sum(axis=1), entry, effect, self.limit, ~below)
        up_rows = below | (typical & (down.count > 0))
        up = _Chosen(
            np.where(raises, -effect, np.inf),
            raises.sum(axis=1),
            entry,
            effect,
            np.where(below, self.limit, 2),
            up_rows,
        )
        summaries = np.empty(len(p_win), dtype=object)
        refs = np.empty(len(p_win), dtype=object)
        base_risk = 1 - base
        comparison = [f"Risk {r:.0%} vs a base risk of {base_risk:.0%}" for r in risk.tolist()]
        self._above(standing == ABOVE, comparison, risk / base_risk, down, summaries, refs)
        self._typical(typical, comparison, down, up, summaries, refs)
        rows = np.flatnonzero(below)
        summaries[rows] = [f"{comparison[i]}: better than the average deal." for i in rows.tolist()]
        refs[rows] = up.pairs(rows)
        rows = np.flatnonzero(standing == STALE)
        summaries[rows] = [_stale_sentence(self.space, age) for age in ages[rows].tolist()]
        refs[rows] = down.pairs(rows)
        return standing.tolist(), summaries.tolist(), refs.tolist()

    def _above(
        self,
        rows: np.ndarray,
        comparison: list[str],
        ratio: np.ndarray,
        down: _Chosen,
        summaries: np.ndarray,
        refs: np.ndarray,
    ) -> None:
        """A deal materially above the base risk always names what drives it."""
        rows = np.flatnonzero(rows)
        labels = self._labels(down, rows, self.limit)
        age_alone = (down.count[rows] == 1) & self._is_age(down.entry[rows, 0])
        drivers = np.where(
            down.count[rows] == 0,
            "the combination of its attributes, none of which stands out alone",
            np.where(age_alone, "its age alone: deals still open this long win less often", labels),
        )
        summaries[rows] = [
            f"{comparison[i]} ({x:.1f}×). What drives it: {d}."
            for i, x, d in zip(rows.tolist(), ratio[rows].tolist(), drivers.tolist())
        ]
        refs[rows] = down.pairs(rows)

    def _typical(
        self,
        rows: np.ndarray,
        comparison: list[str],
        down: _Chosen,
        up: _Chosen,
        summaries: np.ndarray,
        refs: np.ndarray,
    ) -> None:
        """About the base risk: what raises its chances is named only beside what lowers them."""
        rows = np.flatnonzero(rows)
        lowering, raising = self._labels(down, rows, 2), self._labels(up, rows, 2)
        has_down, has_up = down.count[rows] > 0, up.count[rows] > 0
        texts = []
        for i, lower, higher, some_down, some_up in zip(
            rows.tolist(), lowering.tolist(), raising.tolist(), has_down.tolist(), has_up.tolist()
        ):
            if some_down and some_up:
                texts.append(
                    f"{comparison[i]}: about the base risk. What lowers its chances ({lower}) is offset by "
                    f"what raises them ({higher})."
                )
            elif some_down:
                texts.append(f"{comparison[i]}: about the base risk; what lowers its chances does so only slightly.")
            else:
                texts.append(
                    f"{comparison[i]}: about the base risk. Nothing about this deal moves its chances materially."
                )
        summaries[rows] = texts
        refs[rows] = down.pairs(rows)

    def _is_age(self, positions: np.ndarray) -> np.ndarray:
        is_age = np.array([reason.dimension == "age" for reason in self.catalogue] + [False])
        return is_age[positions]  # position -1 (no reason) picks the last slot

    def _labels(self, chosen: _Chosen, rows: np.ndarray, most: int) -> np.ndarray:
        """Per row, the labels of its first `most` chosen reasons joined by "; " (written once per distinct set)."""
        positions = chosen.entry[rows, :most]
        size = len(self.catalogue) + 1
        key = np.zeros(len(rows), dtype=np.int64)
        for column in range(positions.shape[1]):
            key = key * size + (positions[:, column] + 1)
        distinct, code = np.unique(key, return_inverse=True)
        label = [reason.label for reason in self.catalogue]
        texts = []
        for value in distinct.tolist():
            parts = []
            while value:
                value, digit = divmod(value, size)
                if digit:
                    parts.append(label[digit - 1])
            texts.append("; ".join(reversed(parts)))
        return np.array(texts + [""], dtype=object)[code.reshape(-1)]


class _Chosen:
    """Per deal, up to its `width` qualifying reasons, strongest first (ties keep the dimensions' order), for the rows
    in `rows` only: `entry` holds catalogue positions (-1 past `count`), `effect` their effects for this deal."""

    def __init__(
        self,
        order_key: np.ndarray,
        qualifying: np.ndarray,
        entry: np.ndarray,
        effect: np.ndarray,
        width: int | np.ndarray,
        rows: np.ndarray,
    ):
        most = int(np.max(width)) if np.size(width) else 0
        self.count = np.where(rows, np.minimum(qualifying, width), 0)
        self.entry = np.full((len(entry), most), -1, dtype=np.int64)
        self.effect = np.zeros((len(entry), most))
        chosen = np.flatnonzero(rows)
        kept = min(most, entry.shape[1])  # fewer fields than reasons shown: the rest stay empty
        if len(chosen) and kept:
            order = np.argsort(order_key[chosen], axis=1, kind="stable")[:, :kept]
            picked_entry = np.take_along_axis(entry[chosen], order, axis=1)
            beyond = np.arange(kept) >= self.count[chosen][:, None]
            self.entry[chosen, :kept] = np.where(beyond, -1, picked_entry)
            self.effect[chosen, :kept] = np.where(beyond, 0.0, np.take_along_axis(effect[chosen], order, axis=1))

    def pairs(self, rows: np.ndarray) -> list[tuple[tuple[int, float], ...]]:
        """Each row's (catalogue position, effect) pairs."""
        entries, effects = self.entry[rows].tolist(), self.effect[rows].tolist()
        return [tuple(zip(e[:c], f[:c])) for e, f, c in zip(entries, effects, self.count[rows].tolist())]

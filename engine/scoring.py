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
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from engine.asof import AsOfView
from engine.evidence import Evidence, Reason
from engine.features import open_deal_features
from engine.fields import FeatureSpace
from engine.model import TrainedModel
from engine.quality import rule_based_win_probability
from engine.settings import MetricsSettings, ModelSettings

METHOD_MODEL = "driver model"
"""A score's method starts with this and names the chosen family, e.g. "driver model (gradient-boosted trees, calibrated)"."""
METHOD_SHRUNK = "segment win rates shrunk toward the overall rate (the model has no skill)"
METHOD_SHRUNK_NO_MODEL = "segment win rates shrunk toward the overall rate (no model: too few closed deals to train one)"
METHOD_SHRUNK_REFUSED = "segment win rates shrunk toward the overall rate (the model was refused as a likely leak)"
METHOD_AGE_ONLY = "win rate of deals still open at the same age (no field is left to use)"
METHOD_RULES = "rule-based default (too few closed deals for statistics)"
MATERIAL = 1.1
"""Risk at least this many times the base risk is "above"; at most its inverse, "below"; between, "typical"."""
ABOVE, TYPICAL, BELOW, STALE = "above", "typical", "below", "stale"


class Score(NamedTuple):
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


class ScoredDeals(Sequence):
    """Every open deal's score, held by column: what a refresh computes and the store writes.

    A million-deal pipeline would otherwise become a million `Score` objects, each with its reason objects, turned
    into dicts and then into JSON. Reasons are shared instead: `catalogue` holds each distinct reason once (with
    effect 0) and each deal refers to the ones it shows by position, with its own effect. Indexing still gives one
    `Score`, built when asked for.
    """

    def __init__(self, method: str, model_id: int | None, base_p_win: float | None, columns: dict,
                 reason_refs: list[tuple[tuple[int, float], ...]], catalogue: list[Reason]):  # fmt: skip
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

    def __getitem__(self, position: int) -> Score:
        probability = float(self.p_win[position])
        return Score(
            deal_id=self.deal_id[position], p_win=probability, risk=1 - probability, method=self.method,
            model_id=self.model_id,
            reasons=tuple(_with_effect(self.catalogue[k], effect) for k, effect in self.reason_refs[position]),
            deal_amount=float(self.deal_amount[position]), age_days=int(self.age_days[position]),
            deal_stage=self.deal_stage[position], sales_rep_id=self.sales_rep_id[position],
            deal_name=self.deal_name[position], base_p_win=self.base_p_win, age_p_win=self.age_p_win[position],
            standing=self.standing[position], summary=self.summary[position], stale=bool(self.stale[position]),
        )  # fmt: skip

    def frame(self) -> pd.DataFrame:
        """The scores' flat columns (no reasons), one row per deal, for measuring them against outcomes."""
        return pd.DataFrame({"deal_id": self.deal_id, "p_win": self.p_win, "risk": self.risk,
                             "deal_amount": self.deal_amount, "age_days": self.age_days, "stale": self.stale,
                             "standing": self.standing, "method": self.method})  # fmt: skip


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
        explained = [_unexplained(p, base, st, space, age) for p, st, age in zip(p_win.tolist(), stale.tolist(),
                                                                                 ages.tolist())]  # fmt: skip
        standing, summary = [e[0] for e in explained], [e[1] for e in explained]
        refs, catalogue, age_p_win = [()] * len(ages), [], [None] * len(ages)
    columns = {
        "deal_id": open_deals["deal_id"].to_numpy(dtype=object).tolist(), "p_win": p_win,
        "deal_amount": open_deals["deal_amount"].to_numpy(dtype=float), "age_days": ages,
        "deal_stage": _texts_or_none(open_deals["deal_stage"], keep_empty=True),
        "sales_rep_id": [str(rep) for rep in open_deals["sales_rep_id"].to_numpy(dtype=object).tolist()],
        "deal_name": _texts_or_none(open_deals["deal_name"]) if "deal_name" in open_deals else [None] * len(ages),
        "age_p_win": age_p_win, "standing": standing, "summary": summary, "stale": stale,
    }  # fmt: skip
    model_or_none = model_id if method.startswith(METHOD_MODEL) else None
    return ScoredDeals(method, model_or_none, base, columns, refs, catalogue)


def _no_scores(base: float | None) -> ScoredDeals:
    empty = {name: [] for name in ("deal_id", "deal_stage", "sales_rep_id", "deal_name", "age_p_win", "standing",
                                   "summary")}  # fmt: skip
    arrays = {"p_win": np.zeros(0), "deal_amount": np.zeros(0), "age_days": np.zeros(0, dtype=int),
              "stale": np.zeros(0, dtype=bool)}  # fmt: skip
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
    lookup = {lm: float(logit(np.clip(evidence.age_rate(int(lm)), 1e-6, 1 - 1e-6)) - overall) for lm in landmarks.unique()}
    return landmarks.map(lookup).astype(float)


def standing_of(risk: float, base_p_win: float | None, stale: bool) -> str:
    """Whether a risk is materially above, about, or below the base risk (one rule for every surface)."""
    if stale:
        return STALE
    if base_p_win is None:
        return TYPICAL
    base_risk = 1 - base_p_win
    if base_risk <= 0:
        return TYPICAL
    if risk >= MATERIAL * base_risk:
        return ABOVE
    if risk <= base_risk / MATERIAL:
        return BELOW
    return TYPICAL


def _stale_sentence(space: FeatureSpace, age_days: int) -> str:
    return (f"Stale — likely dead: open {age_days} days, longer than {space.supported_quantile:.0%} of the deals that "
            f"ever closed took ({space.supported_age} days). History says nothing about deals this old: close it "
            f"out in the CRM or re-qualify it.")  # fmt: skip


def _unexplained(p_win: float, base: float | None, stale: bool, space: FeatureSpace, age_days: int):
    standing = standing_of(1 - p_win, base, stale)
    if stale:
        return standing, _stale_sentence(space, age_days), ()
    return standing, "Too few closed deals for statistics: P(win) is the configured rule-based default.", ()


def _with_effect(reason: Reason, effect: float) -> Reason:
    """`reason` with this deal's effect (built directly: `_replace` costs several times more, once per shown reason)."""
    return Reason(reason.dimension, reason.level, reason.text, float(effect), reason.significant, reason.rate,
                  reason.n, reason.low, reason.high, reason.label)  # fmt: skip


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
            keys = np.column_stack([ages, landmarks])
            unique, position = np.unique(keys, axis=0, return_inverse=True)
            reasons = [self.evidence.age_reason(int(age), int(lm), 0.0) for age, lm in unique.tolist()]
        else:
            values = features[dimension].to_numpy(dtype=object).astype(str)
            unique, position = np.unique(values, return_inverse=True)
            reasons = [self.evidence.attribute_reason(dimension, level, 0.0) for level in unique.tolist()]
        first = len(self.catalogue)
        self.catalogue.extend(reasons)
        rates = np.array([np.nan if r.rate is None else r.rate for r in reasons], dtype=float)
        position = np.asarray(position).reshape(-1)
        return first + position, rates[position]

    def explain_all(self, ages: np.ndarray, landmarks: np.ndarray, features: pd.DataFrame, effects: pd.DataFrame,
                    p_win: np.ndarray, stale: np.ndarray) -> tuple[list[str], list[str], list[tuple]]:  # fmt: skip
        """(standings, summaries, reason references) of all deals. A reason is listed as lowering (raising) P(win)
        only when both the score's contribution and the evidence shown beside it point that way, so no line
        contradicts its own numbers.

        Which reasons qualify and their order are decided for all deals at once, as arrays; only the sentence is
        written per deal."""
        base = self.evidence.overall
        effect = effects.to_numpy(dtype=float)
        entries = [self._entries(d, features, ages, landmarks) for d in effects.columns]
        entry = np.column_stack([position for position, _ in entries])
        rate = np.column_stack([rates for _, rates in entries])
        known = ~np.isnan(rate)
        lowers = (effect < -1e-9) & known & (rate < base)
        raises = (effect > 1e-9) & known & (rate > base)
        width = max(self.limit, 2)
        lowering = _top(np.where(lowers, effect, np.inf), lowers.sum(axis=1), entry, effect, width)
        raising = _top(np.where(raises, -effect, np.inf), raises.sum(axis=1), entry, effect, width)
        base_risk = 1 - base
        standings, summaries, refs = [], [], []
        for i, (probability, is_stale, age) in enumerate(zip(p_win.tolist(), stale.tolist(), ages.tolist())):
            standing = standing_of(1 - probability, base, is_stale)
            down = lowering[i][: self.limit] if standing != BELOW else ()
            if standing == BELOW:
                up = raising[i][: self.limit]
            else:  # about the base risk: what raises its chances is named only beside what lowers them
                up = raising[i][:2] if standing == TYPICAL and down else ()
            summary, shown = self._sentence(standing, probability, age, base_risk, down, up)
            standings.append(standing)
            summaries.append(summary)
            refs.append(shown)
        return standings, summaries, refs

    def _sentence(self, standing: str, p_win: float, age_days: int, base_risk: float, lowering: tuple,
                  raising: tuple) -> tuple[str, tuple]:  # fmt: skip
        """(summary, reasons shown) from the reasons already chosen for this deal."""
        risk = 1 - p_win
        comparison = f"Risk {risk:.0%} vs a base risk of {base_risk:.0%}"
        if standing == STALE:
            return _stale_sentence(self.space, age_days), lowering
        if standing == ABOVE:
            if not lowering:
                driver = "the combination of its attributes, none of which stands out alone"
            elif len(lowering) == 1 and self.catalogue[lowering[0][0]].dimension == "age":
                driver = "its age alone: deals still open this long win less often"
            else:
                driver = self._labels(lowering)
            return f"{comparison} ({risk / base_risk:.1f}×). What drives it: {driver}.", lowering
        if standing == BELOW:
            return f"{comparison}: better than the average deal.", raising
        if lowering and raising:
            summary = (f"{comparison}: about the base risk. What lowers its chances "
                       f"({self._labels(lowering[:2])}) is offset by what raises them "
                       f"({self._labels(raising[:2])}).")  # fmt: skip
        elif lowering:
            summary = f"{comparison}: about the base risk; what lowers its chances does so only slightly."
        else:
            summary = f"{comparison}: about the base risk. Nothing about this deal moves its chances materially."
        return summary, lowering

    def _labels(self, refs: tuple) -> str:
        return "; ".join(self.catalogue[k].label for k, _ in refs)


def _top(order_key: np.ndarray, count: np.ndarray, entry: np.ndarray, effect: np.ndarray,
         width: int) -> list[tuple[tuple[int, float], ...]]:  # fmt: skip
    """Per deal, up to `width` qualifying reasons as (catalogue position, effect), strongest first (ties keep the
    dimensions' order)."""
    order = np.argsort(order_key, axis=1, kind="stable")[:, :width]
    chosen_entry = np.take_along_axis(entry, order, axis=1).tolist()
    chosen_effect = np.take_along_axis(effect, order, axis=1).tolist()
    counts = np.minimum(count, width).tolist()
    return [tuple(zip(e[:c], f[:c])) for e, f, c in zip(chosen_entry, chosen_effect, counts)]

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

    def to_dict(self) -> dict:
        return {"deal_id": self.deal_id, "p_win": self.p_win, "risk": self.risk, "method": self.method,
                "model_id": self.model_id, "reasons": [r.to_dict() for r in self.reasons],
                "deal_amount": self.deal_amount, "age_days": self.age_days, "deal_stage": self.deal_stage,
                "sales_rep_id": self.sales_rep_id, "deal_name": self.deal_name, "base_p_win": self.base_p_win,
                "age_p_win": self.age_p_win, "standing": self.standing, "summary": self.summary,
                "stale": self.stale}  # fmt: skip


def score_open_deals(
    view: AsOfView,
    evidence: Evidence | None,
    model: TrainedModel | None,
    model_id: int | None,
    space: FeatureSpace,
    model_settings: ModelSettings,
    metrics: MetricsSettings,
) -> list[Score]:
    """Score `view.open`; the list is in the same order as its rows."""
    open_deals = view.open
    if open_deals.empty:
        return []
    features = open_deal_features(open_deals, space)  # the refresh's space holds exactly the model's fields
    base = evidence.overall if evidence is not None and evidence.closed_deals else None
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
    stale = space.stale(open_deals["age_days"]).to_numpy(dtype=bool)
    if evidence is not None and evidence.closed_deals >= metrics.min_sample and stale.any():
        oldest = evidence.age_rate(space.landmarks[-1])
        p_win = np.where(stale, np.minimum(p_win, oldest), p_win)
    writer = _Explainer(evidence, space, model_settings.top_reasons) if effects is not None else None
    ages = open_deals["age_days"].to_numpy(dtype=int)
    landmarks = features["landmark"].to_numpy(dtype=int)
    if writer:
        explained = writer.explain_all(ages, landmarks, features, effects, p_win, stale)
    else:
        explained = [_unexplained(float(p), base, bool(st), space, int(age)) for p, st, age in zip(p_win, stale, ages)]
    age_rates = {int(lm): evidence.age_rate(int(lm)) for lm in np.unique(landmarks)} if writer else {}
    stages = open_deals["deal_stage"].to_numpy(dtype=object)
    names = open_deals["deal_name"].to_numpy(dtype=object) if "deal_name" in open_deals else np.full(len(ages), None)
    model_or_none = model_id if method.startswith(METHOD_MODEL) else None
    scores = []
    for position, (deal_id, amount, rep) in enumerate(zip(open_deals["deal_id"].to_numpy(dtype=object),
                                                          open_deals["deal_amount"].to_numpy(dtype=float),
                                                          open_deals["sales_rep_id"].to_numpy(dtype=object))):  # fmt: skip
        probability = float(p_win[position])
        standing, summary, reasons = explained[position]
        stage, name = stages[position], names[position]
        scores.append(Score(
            deal_id=deal_id, p_win=probability, risk=1 - probability, method=method, model_id=model_or_none,
            reasons=reasons, deal_amount=float(amount), age_days=int(ages[position]),
            deal_stage=stage if isinstance(stage, str) else None, sales_rep_id=str(rep),
            deal_name=name if isinstance(name, str) and name else None, base_p_win=base,
            age_p_win=age_rates.get(int(landmarks[position])), standing=standing, summary=summary,
            stale=bool(stale[position]),
        ))  # fmt: skip
    return scores


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
    """Turns a deal's effects into its standing, summary and reasons; texts are looked up once per level."""

    def __init__(self, evidence: Evidence, space: FeatureSpace, limit: int):
        self.evidence, self.space, self.limit = evidence, space, limit
        self._reasons: dict[tuple[str, str], Reason] = {}

    def _attribute(self, dimension: str, level: str, effect: float) -> Reason:
        key = (dimension, level)
        if key not in self._reasons:
            self._reasons[key] = self.evidence.attribute_reason(dimension, level, 0.0)
        return _with_effect(self._reasons[key], effect)

    def _age(self, age_days: int, landmark: int, effect: float) -> Reason:
        key = ("age", age_days, landmark)  # ages repeat: a few hundred distinct ones among a million open deals
        if key not in self._reasons:
            self._reasons[key] = self.evidence.age_reason(age_days, landmark, 0.0)
        return _with_effect(self._reasons[key], effect)

    def explain_all(self, ages: np.ndarray, landmarks: np.ndarray, features: pd.DataFrame, effects: pd.DataFrame,
                    p_win: np.ndarray, stale: np.ndarray) -> list[tuple[str, str, tuple[Reason, ...]]]:  # fmt: skip
        """(standing, summary, reasons) per deal. A reason is listed as lowering (raising) P(win) only when both the
        score's contribution and the evidence shown beside it point that way, so no line contradicts its own numbers.

        Which reasons qualify and their order are decided for all deals at once; only the reasons shown become
        objects (a million-deal pipeline would otherwise build ten per deal to show three)."""
        base = self.evidence.overall
        dimensions = list(effects.columns)
        effect = effects.to_numpy(dtype=float)
        rate = np.column_stack([self._rates(d, features, landmarks) for d in dimensions])
        known = ~np.isnan(rate)
        lowers = (effect < -1e-9) & known & (rate < base)
        raises = (effect > 1e-9) & known & (rate > base)
        lowering_order = np.argsort(np.where(lowers, effect, np.inf), axis=1, kind="stable")
        raising_order = np.argsort(np.where(raises, -effect, np.inf), axis=1, kind="stable")
        lowering_count, raising_count = lowers.sum(axis=1), raises.sum(axis=1)
        levels = {d: features[d].to_numpy(dtype=object) for d in dimensions if d != "age"}

        def shown(i: int, order: np.ndarray, count: np.ndarray, limit: int) -> list[Reason]:
            return [self._reason(dimensions[j], i, levels, effect[i, j], ages, landmarks)
                    for j in order[i, : min(count[i], limit)]]  # fmt: skip

        out = []
        for i in range(len(effect)):
            standing = standing_of(1 - float(p_win[i]), base, bool(stale[i]))
            lowering = shown(i, lowering_order, lowering_count, self.limit) if standing != BELOW else []
            if standing == BELOW:
                raising = shown(i, raising_order, raising_count, self.limit)
            else:  # about the base risk: what raises its chances is named only beside what lowers them
                raising = shown(i, raising_order, raising_count, 2) if standing == TYPICAL and lowering else []
            out.append(self._sentence(standing, float(p_win[i]), int(ages[i]), lowering, raising))
        return out

    def _rates(self, dimension: str, features: pd.DataFrame, landmarks: np.ndarray) -> np.ndarray:
        if dimension == "age":
            unique, position = np.unique(landmarks, return_inverse=True)
            rates = [self.evidence.age_reason(0, int(lm), 0.0).rate for lm in unique]
            return np.array([np.nan if r is None else r for r in rates], dtype=float)[position]
        unique, position = np.unique(features[dimension].to_numpy(dtype=object).astype(str), return_inverse=True)
        rates = [self._attribute(dimension, level, 0.0).rate for level in unique]
        return np.array([np.nan if r is None else r for r in rates], dtype=float)[position]

    def _reason(self, dimension: str, i: int, levels: dict, effect: float, ages: np.ndarray,
                landmarks: np.ndarray) -> Reason:  # fmt: skip
        if dimension == "age":
            return self._age(int(ages[i]), int(landmarks[i]), effect)
        return self._attribute(dimension, levels[dimension][i], effect)

    def _sentence(self, standing: str, p_win: float, age_days: int, lowering: list[Reason],
                  raising: list[Reason]) -> tuple[str, str, tuple[Reason, ...]]:  # fmt: skip
        """(standing, summary, reasons shown) from the reasons already chosen for this deal."""
        base_risk, risk = 1 - self.evidence.overall, 1 - p_win
        comparison = f"Risk {risk:.0%} vs a base risk of {base_risk:.0%}"
        if standing == STALE:
            return standing, _stale_sentence(self.space, age_days), tuple(lowering)
        if standing == ABOVE:
            if not lowering:
                driver = "the combination of its attributes, none of which stands out alone"
            elif len(lowering) == 1 and lowering[0].dimension == "age":
                driver = "its age alone: deals still open this long win less often"
            else:
                driver = "; ".join(r.label for r in lowering)
            return standing, f"{comparison} ({risk / base_risk:.1f}×). What drives it: {driver}.", tuple(lowering)
        if standing == BELOW:
            return standing, f"{comparison}: better than the average deal.", tuple(raising)
        if lowering and raising:
            summary = (f"{comparison}: about the base risk. What lowers its chances "
                       f"({'; '.join(r.label for r in lowering[:2])}) is offset by what raises them "
                       f"({'; '.join(r.label for r in raising[:2])}).")  # fmt: skip
        elif lowering:
            summary = f"{comparison}: about the base risk; what lowers its chances does so only slightly."
        else:
            summary = f"{comparison}: about the base risk. Nothing about this deal moves its chances materially."
        return standing, summary, tuple(lowering)

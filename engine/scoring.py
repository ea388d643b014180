"""Risk scores for every open deal as of a date: P(win), risk, the method behind it, and reasons.

Three methods, chosen per refresh and named on every score:
- the driver model, when it beat the base rate on the time-ordered holdout;
- empirical-Bayes segment rates (shrunk toward the overall rate) combined in log-odds with the age rate,
  when the model has no skill;
- the configured rule-based defaults, when there are too few closed deals for either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from engine.asof import AsOfView
from engine.evidence import ATTRIBUTE_DIMENSIONS, Evidence, Reason, nearest_landmark
from engine.features import open_deal_features
from engine.model import SIGNIFICANT, TrainedModel, predict
from engine.settings import MetricsSettings, ModelSettings

METHOD_MODEL = "driver model"
METHOD_SHRUNK = "segment win rates shrunk toward the overall rate (the model has no skill)"
METHOD_RULES = "rule-based default (too few closed deals for statistics)"


@dataclass(frozen=True)
class Score:
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

    def to_dict(self) -> dict:
        return {"deal_id": self.deal_id, "p_win": self.p_win, "risk": self.risk, "method": self.method,
                "model_id": self.model_id, "reasons": [r.to_dict() for r in self.reasons],
                "deal_amount": self.deal_amount, "age_days": self.age_days, "deal_stage": self.deal_stage,
                "sales_rep_id": self.sales_rep_id, "deal_name": self.deal_name}  # fmt: skip


def score_open_deals(
    view: AsOfView,
    evidence: Evidence | None,
    model: TrainedModel | None,
    model_id: int | None,
    model_settings: ModelSettings,
    metrics: MetricsSettings,
) -> list[Score]:
    """Score `view.open`; the list is in the same order as its rows."""
    open_deals = view.open
    if open_deals.empty:
        return []
    features = open_deal_features(open_deals, model_settings.landmarks, metrics.amount_bands)
    if evidence is None or evidence.closed_deals < metrics.min_sample:
        p_win, effects, method, significance = _rules(open_deals, view.stage_known, metrics), None, METHOD_RULES, {}
    elif model is not None and model.has_skill:
        p_win, method = predict(model.pipeline, features), METHOD_MODEL
        # Only significant drivers become reasons; the others still count in P(win) through the model.
        coefficients = {(d.feature, d.level): d.coefficient for d in model.drivers if d.status == SIGNIFICANT}
        significance = {key: True for key in coefficients}
        effects = _effects(features, lambda dimension, level: coefficients.get((dimension, level), 0.0),
                           lambda landmark: coefficients.get(("age_band", _age_level(features, landmark)), 0.0))
    else:
        method, significance = METHOD_SHRUNK, {}
        effects = _effects(features, lambda d, level: evidence.attributes[d].shift(level),
                           lambda landmark: _age_shift(evidence, landmark))  # fmt: skip
        p_win = expit(logit(np.clip(evidence.overall, 1e-6, 1 - 1e-6)) + effects.sum(axis=1).to_numpy())
    scores = []
    for position, (index, deal) in enumerate(open_deals.iterrows()):
        reasons = ()
        if effects is not None:
            reasons = _reasons(deal, features.loc[index], effects.loc[index], evidence, significance,
                               model_settings.top_reasons)  # fmt: skip
        probability = float(p_win[position])
        scores.append(Score(
            deal_id=deal["deal_id"], p_win=probability, risk=1 - probability, method=method,
            model_id=model_id if method == METHOD_MODEL else None, reasons=reasons,
            deal_amount=float(deal["deal_amount"]), age_days=int(deal["age_days"]),
            deal_stage=deal["deal_stage"] if isinstance(deal["deal_stage"], str) else None,
            sales_rep_id=str(deal["sales_rep_id"]),
            deal_name=deal["deal_name"] if isinstance(deal.get("deal_name"), str) else None,
        ))  # fmt: skip
    return scores


def _rules(open_deals: pd.DataFrame, stage_known: bool, metrics: MetricsSettings) -> np.ndarray:
    if stage_known:
        stages = open_deals["deal_stage"].map(metrics.stage_win_probability)
        return stages.fillna(metrics.default_win_probability).to_numpy(dtype=float)
    return np.full(len(open_deals), metrics.default_win_probability)


def _age_level(features: pd.DataFrame, landmark: int) -> str:
    return features.loc[features["landmark"] == landmark, "age_band"].iloc[0]


def _age_shift(evidence: Evidence, landmark: int) -> float:
    table = evidence.ages.table
    known = [age for age in table.index if age <= landmark]
    return float(table.loc[max(known), "log_odds_shift"]) if known else 0.0


def _effects(features: pd.DataFrame, attribute_effect, age_effect) -> pd.DataFrame:
    """Per deal and dimension, the change in log-odds of winning that this attribute brings."""
    effects = pd.DataFrame(index=features.index)
    for dimension in ATTRIBUTE_DIMENSIONS:
        levels = features[dimension]
        lookup = {level: attribute_effect(dimension, level) for level in levels.unique()}
        effects[dimension] = levels.map(lookup).astype(float)
    lookup = {landmark: age_effect(landmark) for landmark in features["landmark"].unique()}
    effects["age"] = features["landmark"].map(lookup).astype(float)
    return effects


def _reasons(deal: pd.Series, features: pd.Series, effects: pd.Series, evidence: Evidence,
             significance: dict, limit: int) -> tuple[Reason, ...]:  # fmt: skip
    """The attributes that lower this deal's P(win) most, each said with the history behind it.

    When nothing lowers it (typical without signal), the attributes whose raw history is weakest are given
    instead, with effect 0 and not significant, so the reader still sees the numbers and that they are noise.
    """
    reasons = []
    for dimension, effect in effects.sort_values().items():
        if effect >= -1e-9 or len(reasons) == limit:
            break
        if dimension == "age":
            landmark = int(features["landmark"])
            known = [age for age in evidence.ages.table.index if age <= landmark]
            text = evidence.age_text(int(deal["age_days"]), max(known)) if known else f"Open {deal['age_days']} days"
            reasons.append(Reason("age", features["age_band"], text, float(effect),
                                  significance.get(("age_band", features["age_band"]), False)))  # fmt: skip
        else:
            level = features[dimension]
            reasons.append(Reason(dimension, level, evidence.segment_text(dimension, level), float(effect),
                                  significance.get((dimension, level), False)))  # fmt: skip
    if not reasons:
        reasons = _weakest_context(features, evidence, limit)
    return tuple(reasons)


def _weakest_context(features: pd.Series, evidence: Evidence, limit: int) -> list[Reason]:
    raw = []
    for dimension in ATTRIBUTE_DIMENSIONS:
        table = evidence.attributes[dimension].table
        level = features[dimension]
        if level in table.index and table.loc[level, "raw"] < evidence.overall:
            raw.append((float(table.loc[level, "raw"]), dimension, level))
    return [Reason(dimension, level, evidence.segment_text(dimension, level), 0.0, False)
            for _, dimension, level in sorted(raw)[:limit]]

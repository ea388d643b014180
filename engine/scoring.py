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
from engine.evidence import ATTRIBUTE_DIMENSIONS, Evidence, Reason
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
    writer = _ReasonWriter(evidence, significance, model_settings.top_reasons) if effects is not None else None
    effect_rows = effects.to_dict("records") if effects is not None else None
    scores = []
    for position, (deal, feature_row) in enumerate(zip(open_deals.to_dict("records"), features.to_dict("records"))):
        reasons = writer.reasons(int(deal["age_days"]), feature_row, effect_rows[position]) if writer else ()
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


class _ReasonWriter:
    """Turns a deal's effects into reasons; texts and rates are looked up once per level, not once per deal."""

    def __init__(self, evidence: Evidence, significance: dict, limit: int):
        self.evidence, self.significance, self.limit = evidence, significance, limit
        self._texts: dict[tuple[str, str], str] = {}
        self._raw = {d: evidence.attributes[d].table["raw"].to_dict() for d in ATTRIBUTE_DIMENSIONS}
        self._ages = sorted(evidence.ages.table.index)

    def _segment(self, dimension: str, level: str) -> str:
        key = (dimension, level)
        if key not in self._texts:
            self._texts[key] = self.evidence.segment_text(dimension, level)
        return self._texts[key]

    def reasons(self, age_days: int, features: dict, effects: dict) -> tuple[Reason, ...]:
        """The attributes that lower this deal's P(win) most, each said with the history behind it.

        When nothing lowers it (typical without signal), the attributes whose raw history is below the overall
        rate are given instead, with effect 0 and not significant, so the reader sees the numbers are noise.
        """
        reasons = []
        for dimension, effect in sorted(effects.items(), key=lambda item: item[1]):
            if effect >= -1e-9 or len(reasons) == self.limit:
                break
            if dimension == "age":
                band = features["age_band"]
                known = [age for age in self._ages if age <= features["landmark"]]
                text = self.evidence.age_text(age_days, known[-1]) if known else f"Open {age_days} days"
                reasons.append(Reason("age", band, text, float(effect), self.significance.get(("age_band", band), False)))
            else:
                level = features[dimension]
                reasons.append(Reason(dimension, level, self._segment(dimension, level), float(effect),
                                      self.significance.get((dimension, level), False)))  # fmt: skip
        return tuple(reasons) if reasons else self._weakest(features)

    def _weakest(self, features: dict) -> tuple[Reason, ...]:
        below = sorted((self._raw[d][features[d]], d) for d in ATTRIBUTE_DIMENSIONS
                       if features[d] in self._raw[d] and self._raw[d][features[d]] < self.evidence.overall)  # fmt: skip
        return tuple(Reason(d, features[d], self._segment(d, features[d]), 0.0, False) for _, d in below[: self.limit])

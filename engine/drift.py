"""Model drift: has the open pipeline moved away from what the model was trained on, and has its skill decayed?

- Population shift per feature: the population stability index (PSI) between the shares of each level among
  deals at creation in the training data and among today's open deals. Rule of thumb: < 0.1 stable, 0.1–0.25
  moderate, > 0.25 a real shift.
- Skill decay: the model's AUC and Brier skill on deals that closed after it was trained, next to its holdout
  figures. Only meaningful for a model that had skill to begin with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel.engine.evaluation import DealResamples, auc_with_interval, brier
from salesintel.engine.features import landmark_examples, open_deal_features
from salesintel.engine.model import TrainedModel

PSI_FLOOR = 1e-4
"""Share used for a level absent on one side, so PSI stays finite."""


def feature_shares(frame: pd.DataFrame, dimensions: tuple[str, ...]) -> dict[str, dict[str, float]]:
    return {column: frame[column].value_counts(normalize=True).to_dict() for column in dimensions}


def _age_matched_shares(by_landmark: dict, landmarks: pd.Series, dimensions: tuple[str, ...]) -> dict:
    """Training shares of each level, mixed over landmarks in the proportions the open pipeline has."""
    weights = landmarks.value_counts(normalize=True)
    expected: dict[str, dict[str, float]] = {d: {} for d in dimensions}
    for landmark, weight in weights.items():
        for dimension in dimensions:
            for level, share in by_landmark.get(int(landmark), {}).get(dimension, {}).items():
                expected[dimension][level] = expected[dimension].get(level, 0.0) + weight * share
    return expected


def population_stability(expected: dict[str, float], actual: dict[str, float]) -> float:
    levels = sorted(set(expected) | set(actual))  # sorted: a set's order changes with each process's string hashing
    e = np.array([max(expected.get(level, 0.0), PSI_FLOOR) for level in levels])
    a = np.array([max(actual.get(level, 0.0), PSI_FLOOR) for level in levels])
    return float(np.sum((a - e) * np.log(a / e)))


def drift_report(
    model: TrainedModel, open_deals: pd.DataFrame, history: pd.DataFrame, min_sample: int, seed: int
) -> dict:
    """PSI per feature of the open pipeline against training (with at least `min_sample` open deals), and skill on
    deals closed since training."""
    psi = {}
    if len(open_deals) >= min_sample:
        features = open_deal_features(open_deals, model.space)
        current = feature_shares(features, model.space.dimensions)
        expected = _age_matched_shares(model.training_shares, features["landmark"], model.space.dimensions)
        psi = {feature: population_stability(expected.get(feature, {}), shares) for feature, shares in current.items()}
    since = history[history["closed_date"] > pd.Timestamp(model.as_of)]
    decay = {
        "closed_since_training": int(len(since)),
        "holdout_auc": model.evaluation["auc"]["auc"],
        "holdout_brier_skill": model.evaluation["brier_skill"],
        "auc": None,
        "brier_skill": None,
    }
    if len(since) >= min_sample and since["won"].nunique() == 2 and not model.refused:
        examples = landmark_examples(since, model.space)
        predicted, outcomes = model.predict(examples), examples["won"].to_numpy()
        deals = DealResamples.draw(examples["deal_id"].to_numpy(), 100, np.random.default_rng(seed))
        auc = auc_with_interval(outcomes, predicted, deals)
        base = brier(outcomes, np.full(len(outcomes), model.base_rate))
        decay.update(
            auc=auc["auc"], auc_low=auc["low"], auc_high=auc["high"], brier_skill=1 - brier(outcomes, predicted) / base
        )
    worst = max(psi.items(), key=lambda item: item[1]) if psi else (None, 0.0)
    return {
        "psi": psi,
        "max_psi_feature": worst[0],
        "max_psi": worst[1],
        "skill": decay,
        "model_as_of": model.as_of.isoformat(),
        "model_has_skill": model.has_skill,
    }

"""Drivers: how much each field level moves the odds of winning, with intervals that cover the true effect.

Estimated apart from the scoring model, on one row per closed deal (its creation-time fields → its outcome), by
a logistic regression that is practically unpenalised (C = 10⁴), with a robust (Huber–White sandwich) covariance.
A penalised fit — what scoring wants, since it predicts better — shrinks every effect toward zero, so its interval
is centred on a biased value and misses the truth more often than it says: one real export showed it. An
unpenalised fit is unbiased in large samples and, with the sandwich, its 95% intervals cover the planted effect
about 95% of the time across seeds of planted data (`tests/test_model_selection.py` counts it).

Each effect is an odds ratio against the field's most common level, with every other field held fixed. Testing is
gated: a driver can be "significant" only if the model as a whole beat the base rate on the holdout, and then only
if it survives Benjamini–Hochberg across all drivers and its level has at least `min_sample` deals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression

from salesintel.engine.encoding import Encoding
from salesintel.engine.fields import FeatureSpace
from salesintel.engine.inference import cluster_robust_covariance
from salesintel.engine.settings import MetricsSettings
from salesintel.engine.stats import benjamini_hochberg

SIGNIFICANT, NOT_SIGNIFICANT, INSUFFICIENT = "significant", "not significant", "insufficient data"
NEARLY_UNPENALISED_C = 1e4


@dataclass(frozen=True)
class Driver:
    """One feature level's effect on the odds of winning, against its feature's reference level."""

    feature: str
    level: str
    reference: str
    label: str
    coefficient: float
    odds_ratio: float
    low: float
    high: float
    p_value: float
    q_value: float | None
    deals: int
    status: str


def estimate_drivers(
    history: pd.DataFrame, space: FeatureSpace, metrics: MetricsSettings, has_skill: bool
) -> list[Driver]:
    """Every non-reference level of every field, most significant first."""
    if not space.fields or history["won"].nunique() < 2:
        return []
    rows = space.attributes(history)  # one row per deal, at creation: no age band
    encoding = Encoding.fit(rows, space, with_age=False)
    coded = encoding.codes(rows)
    design = coded.one_hot()
    won = history["won"].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separation on a rare level: its interval comes out wide, as it should
        classifier = LogisticRegression(C=NEARLY_UNPENALISED_C, max_iter=5000).fit(design, won)
    probabilities = classifier.predict_proba(design)[:, 1]
    covariance = cluster_robust_covariance(design, won, probabilities, np.arange(len(won)), 1 / NEARLY_UNPENALISED_C)
    errors = np.sqrt(np.clip(np.diag(covariance)[1:], 0, None))
    z = stats.norm.ppf(0.5 + metrics.confidence / 2)
    labels = {info.dimension: info.label for info in space.fields}
    raw = []
    for position, (dimension, level) in enumerate(coded.one_hot_names()):
        beta, error = float(classifier.coef_[0][position]), float(errors[position])
        p_value = float(2 * stats.norm.sf(abs(beta) / error)) if error > 0 else 1.0
        deals = int((coded.codes[dimension] == encoding.levels[dimension].index(level)).sum())
        raw.append((dimension, level, encoding.levels[dimension][0], beta, error, p_value, deals))
    testable = [row for row in raw if row[6] >= metrics.min_sample]
    q_values = dict(zip((r[:2] for r in testable), benjamini_hochberg([r[5] for r in testable])))
    drivers = []
    for dimension, level, reference, beta, error, p_value, deals in raw:
        q_value = q_values.get((dimension, level))
        if q_value is None:
            status = INSUFFICIENT
        else:
            status = SIGNIFICANT if has_skill and q_value <= metrics.fdr_q else NOT_SIGNIFICANT
        drivers.append(
            Driver(
                dimension,
                level,
                reference,
                labels[dimension],
                beta,
                float(np.exp(beta)),
                float(np.exp(beta - z * error)),
                float(np.exp(beta + z * error)),
                p_value,
                q_value,
                deals,
                status,
            )
        )
    return sorted(drivers, key=lambda d: (d.status != SIGNIFICANT, d.p_value))

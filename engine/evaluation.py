"""How good is a probability forecast? AUC with a bootstrap interval, Brier score and skill, calibration.

Landmarked data has several rows per deal, so the AUC interval resamples whole deals (a cluster bootstrap);
resampling rows would pretend the rows were independent and give intervals that are too narrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class _TiedRanking:
    """Pre-sorts the scores once so each bootstrap AUC is two weighted counts and a cumulative sum."""

    def __init__(self, outcomes: np.ndarray, scores: np.ndarray):
        self.outcomes = outcomes.astype(float)
        _, self.group = np.unique(scores, return_inverse=True)
        self.groups = int(self.group.max()) + 1 if len(scores) else 0

    def auc(self, weights: np.ndarray) -> float | None:
        positives = np.bincount(self.group, weights=weights * self.outcomes, minlength=self.groups)
        negatives = np.bincount(self.group, weights=weights * (1 - self.outcomes), minlength=self.groups)
        total = positives.sum() * negatives.sum()
        if total == 0:
            return None
        negatives_below = np.cumsum(negatives) - negatives
        return float(((positives * negatives_below).sum() + 0.5 * (positives * negatives).sum()) / total)


@dataclass(frozen=True)
class DealResamples:
    """Bootstrap resamples by deal: how often each deal is drawn in each resample, and each row's deal.

    Drawn once and shared by every figure computed on the same rows from the same random stream: two model
    families evaluated on one holdout get the very same resamples either way, so they are drawn once for both."""

    cluster_index: np.ndarray
    """Each row's deal, numbered 0 … n_clusters - 1."""
    n_clusters: int
    counts: tuple[np.ndarray, ...]
    """Per resample, how often each deal is drawn."""

    @classmethod
    def draw(cls, clusters: np.ndarray, samples: int, rng: np.random.Generator) -> DealResamples:
        _, cluster_index = np.unique(clusters, return_inverse=True)
        n_clusters = int(cluster_index.max()) + 1 if len(clusters) else 0
        counts = tuple(
            np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)
            for _ in range(samples if n_clusters else 0)
        )
        return cls(cluster_index, n_clusters, counts)


def auc_with_interval(
    outcomes: np.ndarray, scores: np.ndarray, resamples: DealResamples, confidence: float = 0.95
) -> dict:
    """ROC AUC of `scores` for `outcomes`, with a percentile interval from resampling deals."""
    ranking = _TiedRanking(np.asarray(outcomes), np.asarray(scores))
    estimate = ranking.auc(np.ones(len(outcomes)))
    draws = []
    for counts in resamples.counts:
        value = ranking.auc(counts[resamples.cluster_index].astype(float))
        if value is not None:
            draws.append(value)
    if estimate is None or not draws:
        return {"auc": estimate, "low": None, "high": None, "samples": len(draws)}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {"auc": estimate, "low": float(low), "high": float(high), "samples": len(draws)}


def brier_gain_interval(
    outcomes: np.ndarray,
    predicted: np.ndarray,
    baseline: np.ndarray,
    resamples: DealResamples,
    confidence: float = 0.95,
) -> dict:
    """How much lower the Brier score of `predicted` is than `baseline`'s, with a percentile interval from
    resampling deals: the margin a model must show before it replaces the base rate."""
    outcomes = np.asarray(outcomes, dtype=float)
    gain_per_row = (np.asarray(baseline) - outcomes) ** 2 - (np.asarray(predicted) - outcomes) ** 2
    if resamples.n_clusters == 0:
        return {"gain": None, "low": None, "high": None}
    per_cluster = np.bincount(resamples.cluster_index, weights=gain_per_row, minlength=resamples.n_clusters)
    rows = np.bincount(resamples.cluster_index, minlength=resamples.n_clusters).astype(float)
    draws = [(counts @ per_cluster) / (counts @ rows) for counts in resamples.counts]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {"gain": float(gain_per_row.mean()), "low": float(low), "high": float(high)}


def brier(outcomes: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities, dtype=float) - np.asarray(outcomes, dtype=float)) ** 2))


def calibration_table(outcomes: np.ndarray, probabilities: np.ndarray, bins: int) -> dict:
    """Predicted vs observed win rate per quantile bin of the prediction, and the expected calibration error."""
    frame = pd.DataFrame({"y": np.asarray(outcomes, dtype=float), "p": np.asarray(probabilities, dtype=float)})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    grouped = frame.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size"))
    rows = [
        {"predicted": float(r.predicted), "observed": float(r.observed), "n": int(r.n)} for r in grouped.itertuples()
    ]
    error = float((grouped["n"] * (grouped["predicted"] - grouped["observed"]).abs()).sum() / len(frame))
    return {"bins": rows, "expected_calibration_error": error}

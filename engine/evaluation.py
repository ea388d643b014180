"""How good is a probability forecast? AUC with a bootstrap interval, Brier score and skill, calibration.

Landmarked data has several rows per deal, so the AUC interval resamples whole deals (a cluster bootstrap);
resampling rows would pretend the rows were independent and give intervals that are too narrow.
"""

from __future__ import annotations

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


def _cluster_resamples(clusters: np.ndarray, samples: int, rng: np.random.Generator):
    """(cluster index per row, number of clusters, an iterator of how often each cluster is drawn per resample):
    the one bootstrap by deal that every interval here uses."""
    _, cluster_index = np.unique(clusters, return_inverse=True)
    n_clusters = int(cluster_index.max()) + 1 if len(clusters) else 0
    draws = (np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)
             for _ in range(samples if n_clusters else 0))  # fmt: skip
    return cluster_index, n_clusters, draws


def auc_with_interval(
    outcomes: np.ndarray, scores: np.ndarray, clusters: np.ndarray, samples: int, rng: np.random.Generator,
    confidence: float = 0.95,
) -> dict:  # fmt: skip
    """ROC AUC of `scores` for `outcomes`, with a percentile interval from resampling `clusters` (deals)."""
    ranking = _TiedRanking(np.asarray(outcomes), np.asarray(scores))
    estimate = ranking.auc(np.ones(len(outcomes)))
    cluster_index, _, resamples = _cluster_resamples(clusters, samples, rng)
    draws = []
    for counts in resamples:
        value = ranking.auc(counts[cluster_index].astype(float))
        if value is not None:
            draws.append(value)
    if estimate is None or not draws:
        return {"auc": estimate, "low": None, "high": None, "samples": len(draws)}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return {"auc": estimate, "low": float(low), "high": float(high), "samples": len(draws)}


def brier_gain_interval(
    outcomes: np.ndarray, predicted: np.ndarray, baseline: np.ndarray, clusters: np.ndarray, samples: int,
    rng: np.random.Generator, confidence: float = 0.95,
) -> dict:  # fmt: skip
    """How much lower the Brier score of `predicted` is than `baseline`'s, with a percentile interval from
    resampling `clusters` (deals): the margin a model must show before it replaces the base rate."""
    outcomes = np.asarray(outcomes, dtype=float)
    gain_per_row = (np.asarray(baseline) - outcomes) ** 2 - (np.asarray(predicted) - outcomes) ** 2
    cluster_index, n_clusters, resamples = _cluster_resamples(clusters, samples, rng)
    if n_clusters == 0:
        return {"gain": None, "low": None, "high": None}
    per_cluster = np.bincount(cluster_index, weights=gain_per_row, minlength=n_clusters)
    rows = np.bincount(cluster_index, minlength=n_clusters).astype(float)
    draws = [(counts @ per_cluster) / (counts @ rows) for counts in resamples]
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
    rows = [{"predicted": float(r.predicted), "observed": float(r.observed), "n": int(r.n)} for r in grouped.itertuples()]
    error = float((grouped["n"] * (grouped["predicted"] - grouped["observed"]).abs()).sum() / len(frame))
    return {"bins": rows, "expected_calibration_error": error}

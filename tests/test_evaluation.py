"""Forecast evaluation: our AUC equals scikit-learn's, and its interval resamples deals, not rows."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from salesintel.engine.evaluation import DealResamples, auc_with_interval, brier, calibration_table


def test_auc_matches_scikit_learn_including_ties():
    rng = np.random.default_rng(1)
    outcomes = rng.random(500) < 0.4
    scores = np.round(rng.random(500) + outcomes * 0.3, 1)
    result = auc_with_interval(outcomes, scores, DealResamples.draw(np.arange(500), samples=50, rng=rng))
    assert result["auc"] == pytest.approx(roc_auc_score(outcomes, scores))
    assert result["low"] < result["auc"] < result["high"]


def test_repeating_rows_of_the_same_deal_does_not_narrow_the_interval():
    rng = np.random.default_rng(2)
    outcomes = rng.random(300) < 0.5
    scores = rng.random(300) + outcomes * 0.2
    once = auc_with_interval(outcomes, scores, DealResamples.draw(np.arange(300), 400, np.random.default_rng(3)))
    tripled_deals = DealResamples.draw(np.tile(np.arange(300), 3), 400, np.random.default_rng(3))
    tripled = auc_with_interval(np.tile(outcomes, 3), np.tile(scores, 3), tripled_deals)
    width = lambda r: r["high"] - r["low"]  # noqa: E731
    assert width(tripled) == pytest.approx(width(once), rel=0.25)


def test_brier_and_a_perfectly_calibrated_forecast():
    assert brier(np.array([1, 0]), np.array([0.75, 0.25])) == pytest.approx(0.0625)
    rng = np.random.default_rng(4)
    p = rng.random(20_000)
    table = calibration_table(rng.random(20_000) < p, p, bins=10)
    assert table["expected_calibration_error"] < 0.02 and len(table["bins"]) == 10

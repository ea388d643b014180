"""The two model families a refresh chooses between, with one interface: fit, log-odds, per-field contributions.

- Logistic regression on one-hot levels (numbers enter as bands), L2-penalised with the strength chosen by the
  one-standard-error rule: additive, stable on little data, exactly explainable.
- Gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier) with native categorical support and the
  raw numbers: finds interactions (a competitor that hurts only in Enterprise deals) and thresholds the bands miss.

Either can be recalibrated (Platt scaling: a logistic fit of the outcome on the model's log-odds) on a slice of
deals that closed after those it was fitted on, which corrects the drift in level a time-ordered split exposes
without changing the ranking.

A deal's contribution from one field is measured against a typical deal of the same age, in calibrated log-odds:
for the logistic regression its level's coefficient minus the mean coefficient of training rows at that age (the
exact Shapley value of a linear model); for the trees, the change in log-odds when only that field is set to its
most common level (or median, for a number). The latter ignores interactions shared with other fields, so
contributions of a tree model need not add up to its score: reasons name what moves a deal, they are not an
accounting identity.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from salesintel.engine.encoding import Coded

LOGISTIC, BOOSTED = "logistic regression", "gradient-boosted trees"
MAX_TREES = 200
"""Trees at most; the number used is chosen on the validation slice (`BoostedModel.fit_on_time`)."""
PATIENCE = 20
"""While choosing the number of trees, fitting stops once this many more trees did not lower the log-loss on the
validation slice."""
FAMILIES = (LOGISTIC, BOOSTED)


@dataclass
class LogisticModel:
    classifier: LogisticRegression
    c: float
    typical: dict[int, dict[str, float]] = field(default_factory=dict)
    """landmark → dimension → mean coefficient among training rows at that age."""
    slope: float = 1.0
    intercept: float = 0.0
    family: str = LOGISTIC

    @classmethod
    def fit(cls, rows: Coded, won: np.ndarray, c: float, seed: int) -> LogisticModel:
        classifier = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        classifier.fit(rows.one_hot(), won)
        model = cls(classifier, c)
        model.typical = model._typical(rows)
        return model

    def raw_log_odds(self, rows: Coded) -> np.ndarray:
        return self.classifier.decision_function(rows.one_hot())

    def level_coefficients(self, rows: Coded) -> dict[str, np.ndarray]:
        """dimension → coefficient per code (index 0 = reference = 0)."""
        result, position = {}, 0
        for dimension, levels in rows.encoding.levels.items():
            width = len(levels) - 1
            result[dimension] = np.concatenate([[0.0], self.classifier.coef_[0][position : position + width]])
            position += width
        return result

    def _typical(self, rows: Coded) -> dict[int, dict[str, float]]:
        coefficients = self.level_coefficients(rows)
        typical = {}
        for landmark in np.unique(rows.landmark):
            at = rows.landmark == landmark
            typical[int(landmark)] = {
                d: float(_coefficient_of(coefficients[d], rows.codes[d][at]).mean())
                for d in rows.encoding.levels
                if d != "age_band"
            }
        return typical

    def contributions(self, rows: Coded, dimensions: tuple[str, ...]) -> dict[str, np.ndarray]:
        coefficients = self.level_coefficients(rows)
        out = {}
        for dimension in dimensions:
            typical = np.zeros(len(rows))
            for landmark in np.unique(rows.landmark):
                typical[rows.landmark == landmark] = self.typical.get(int(landmark), {}).get(dimension, 0.0)
            out[dimension] = self.slope * (_coefficient_of(coefficients[dimension], rows.codes[dimension]) - typical)
        return out


def _coefficient_of(per_code: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Coefficient of each row's level; an unseen level (-1) counts as the reference (0)."""
    return np.where(codes >= 0, per_code[np.maximum(codes, 0)], 0.0)


@dataclass
class BoostedModel:
    classifier: HistGradientBoostingClassifier
    tree_dimensions: tuple[str, ...]
    """Categorical dimensions given to the trees as native categories (number fields go in raw)."""
    number_dimensions: dict[str, str]
    """band dimension → number field, so a contribution can be named by the field's band."""
    medians: dict[str, float]
    slope: float = 1.0
    intercept: float = 0.0
    family: str = BOOSTED
    trees: int | None = None
    """Use only the first this-many trees (chosen on a later slice); None for all."""

    @classmethod
    def fit(
        cls,
        rows: Coded,
        won: np.ndarray,
        tree_dimensions: tuple[str, ...],
        number_dimensions: dict[str, str],
        seed: int,
        trees: int,
    ) -> BoostedModel:
        """Fit exactly `trees` trees (a count chosen before, by `fit_on_time`)."""
        return cls._fit(rows, won, tree_dimensions, number_dimensions, seed, trees, None)

    @classmethod
    def fit_on_time(
        cls,
        rows: Coded,
        won: np.ndarray,
        later: Coded,
        later_won: np.ndarray,
        tree_dimensions: tuple[str, ...],
        number_dimensions: dict[str, str],
        seed: int,
    ) -> BoostedModel:
        """Fit on `rows` and keep as many trees as give the lowest Brier score on `later` (deals that closed after).

        Trees are added until `PATIENCE` more did not lower the log-loss on `later` (or `MAX_TREES`), then the
        count with the lowest Brier score among those fitted is kept. scikit-learn's own early stopping would hold
        out random rows, which share deals (and outcomes) with the rows it fits, so it would stop late; a later
        slice is what the model will face. Stopping early also spares fitting trees nobody keeps: at 1M deals the
        count kept is about 40."""
        later_matrix = later.tree_matrix(tree_dimensions)
        model = cls._fit(
            rows, won, tree_dimensions, number_dimensions, seed, MAX_TREES, {"X_val": later_matrix, "y_val": later_won}
        )
        errors = [np.mean((expit(d) - later_won) ** 2) for d in model.classifier.staged_decision_function(later_matrix)]
        model.trees = int(np.argmin(errors)) + 1
        return model

    @classmethod
    def _fit(
        cls,
        rows: Coded,
        won: np.ndarray,
        tree_dimensions: tuple[str, ...],
        number_dimensions: dict[str, str],
        seed: int,
        trees: int,
        validation: dict[str, np.ndarray] | None,
    ) -> BoostedModel:
        """`validation` (scikit-learn's X_val, y_val): stop early on it, else fit exactly `trees` trees."""
        categorical = np.array([True] * len(tree_dimensions) + [False] * (len(rows.numbers) + 1))
        stopping = {} if validation is None else {"n_iter_no_change": PATIENCE, "scoring": "loss"}
        classifier = HistGradientBoostingClassifier(
            learning_rate=0.1,
            max_iter=trees,
            max_leaf_nodes=8,
            min_samples_leaf=max(200, len(rows) // 500),
            l2_regularization=1.0,
            categorical_features=categorical,
            early_stopping=validation is not None,
            random_state=seed,
            **stopping,
        )
        classifier.fit(rows.tree_matrix(tree_dimensions), won, **(validation or {}))
        medians = {
            name: float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0
            for name, values in rows.numbers.items()
        }
        return cls(classifier, tree_dimensions, number_dimensions, medians)

    def raw_log_odds(self, rows: Coded) -> np.ndarray:
        matrix = rows.tree_matrix(self.tree_dimensions)
        if self.trees is None or self.trees >= self.classifier.n_iter_:
            return self.classifier.decision_function(matrix)
        for count, stage in enumerate(self.classifier.staged_decision_function(matrix), start=1):
            if count == self.trees:
                return stage
        raise AssertionError("unreachable: fewer stages than trees")

    def contributions(self, rows: Coded, dimensions: tuple[str, ...]) -> dict[str, np.ndarray]:
        own = self.raw_log_odds(rows)
        out = {}
        for dimension in dimensions:
            if dimension in self.number_dimensions:
                name = self.number_dimensions[dimension]
                changed = rows.with_number(name, self.medians[name])
            elif dimension in self.tree_dimensions:
                changed = rows.with_level(dimension, 0)
            else:
                out[dimension] = np.zeros(len(rows))
                continue
            out[dimension] = self.slope * (own - self.raw_log_odds(changed))
        return out


FittedModel = LogisticModel | BoostedModel


def log_odds(model: FittedModel, rows: Coded) -> np.ndarray:
    """Calibrated log-odds of winning."""
    return model.slope * model.raw_log_odds(rows) + model.intercept


def predict(model: FittedModel, rows: Coded) -> np.ndarray:
    return expit(log_odds(model, rows))


def calibrate(model: FittedModel, raw: np.ndarray, won: np.ndarray, deals: np.ndarray) -> None:
    """Recalibrate on rows of deals that closed after those the model was fitted on, given the model's raw
    (uncalibrated) log-odds of them: sets slope and intercept.

    Platt scaling fits the outcome's log-odds as slope × the model's log-odds + intercept. Each part changes only
    when the slice shows it must (a 95% test, with standard errors by deal since a deal has one row per landmark):
    the slope when its interval excludes 1, else the level alone when the observed win rate differs from the
    predicted one. On a weak model or a small slice a free recalibration fits chance, which is worse than none.
    """
    won = np.asarray(won, dtype=float)
    model.slope, model.intercept = 1.0, 0.0
    if len(np.unique(won)) < 2:
        return
    _, deal_index = np.unique(deals, return_inverse=True)
    design_effect = len(won) / (int(deal_index.max()) + 1)
    if np.ptp(raw) > 1e-9:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            platt = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), won)
        slope, intercept = float(platt.coef_[0][0]), float(platt.intercept_[0])
        p = expit(slope * raw + intercept)
        design = np.column_stack([np.ones(len(raw)), raw])
        information = design.T @ (design * (p * (1 - p))[:, None])
        slope_error = float(np.sqrt(np.linalg.pinv(information)[1, 1] * design_effect))
        if abs(slope - 1) > 1.96 * slope_error:
            if slope > 0:
                model.slope, model.intercept = slope, intercept
            else:  # the later slice does not support the ranking at all: keep only the level, never a flipped order
                model.slope, model.intercept = 0.0, _level_shift(np.zeros(len(raw)), won)
            return
    residual = np.bincount(deal_index, weights=won - expit(raw))
    level_error = float(np.sqrt((residual**2).sum())) / len(won)
    if abs(residual.sum() / len(won)) > 1.96 * level_error:
        model.intercept = _level_shift(raw, won)


def _level_shift(raw: np.ndarray, won: np.ndarray) -> float:
    """The intercept that makes the mean predicted P(win) equal the observed rate (slope kept at 1)."""
    target = float(np.mean(won))
    low, high = -10.0, 10.0
    for _ in range(60):  # bisection: the mean of expit(raw + shift) increases with shift
        middle = (low + high) / 2
        if expit(raw + middle).mean() < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2

"""The win-rate driver model: fit on history as of a date, prove its skill on later deals, explain it.

One scikit-learn `Pipeline` (one-hot encoding against each feature's most common level, then L2-regularised
logistic regression) on the landmarked examples of `engine.features`. Skill is measured on a time-ordered
holdout: trained on the deals that closed first, tested on the deals that closed last, against the base rate.

Drivers are the model's coefficients as odds ratios against the reference level, with deal-clustered
intervals. Testing them is gated: a driver can be "significant" only if the model as a whole beats the base
rate on the holdout (AUC interval above 0.5 and a positive Brier skill), and then only if it survives
Benjamini–Hochberg across all drivers and its level has at least `min_sample` deals. Gatekeeping keeps the
chance of reporting any driver on pure noise well under the false discovery rate.

Skill that is too good to be true is treated as a leak: a holdout AUC above `leak_auc` means some field encodes
the outcome. The field that best separates won from lost on its own is dropped and the model refitted; if no
field explains it, the model is refused and scores fall back to history, saying why.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import date

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from engine.evaluation import auc_with_interval, brier, calibration_table
from engine.features import feature_columns, landmark_examples
from engine.fields import FeatureSpace, single_field_auc
from engine.inference import cluster_robust_covariance
from engine.settings import MetricsSettings, ModelSettings
from engine.stats import benjamini_hochberg

SIGNIFICANT, NOT_SIGNIFICANT, INSUFFICIENT = "significant", "not significant", "insufficient data"


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


@dataclass
class TrainedModel:
    """A fitted pipeline with everything needed to trust (or distrust) it, ready to be stored as a version."""

    pipeline: Pipeline
    as_of: date
    train_from: date
    train_to: date
    deals: int
    examples: int
    base_rate: float
    evaluation: dict
    has_skill: bool
    verdict: str
    drivers: list[Driver] = field(default_factory=list)
    training_shares: dict = field(default_factory=dict)
    """landmark → feature → level → share among training rows at that age: the baseline for population-shift
    (PSI) checks, matched to the ages of the open pipeline (old open deals differ from new ones by nature)."""
    space: FeatureSpace | None = None
    """The fields the model uses (after any leak it found was dropped) and its age landmarks."""
    typical_effects: dict = field(default_factory=dict)
    """landmark → dimension → mean coefficient over training rows at that age: a typical deal of that age, against
    which one deal's contributions are measured."""
    holdout_risk: np.ndarray | None = None
    holdout_lost: np.ndarray | None = None
    holdout_deals: np.ndarray | None = None
    """Holdout predictions (risk), outcomes (lost) and deal ids: what the risk rule's threshold is chosen from."""
    leaks: list[str] = field(default_factory=list)
    """What the leak guard did, in words (a dropped field, or a refusal)."""
    refused: bool = False

    def summary(self) -> dict:
        """JSON-ready description (everything but the pipeline)."""
        return {"as_of": self.as_of.isoformat(), "train_from": self.train_from.isoformat(),
                "train_to": self.train_to.isoformat(), "deals": self.deals, "examples": self.examples,
                "base_rate": self.base_rate, "evaluation": self.evaluation, "has_skill": self.has_skill,
                "verdict": self.verdict, "drivers": [asdict(d) for d in self.drivers], "leaks": self.leaks,
                "refused": self.refused,
                "features": [f.label for f in self.space.fields] if self.space else []}  # fmt: skip


class NotEnoughHistory(Exception):
    """Too few closed deals (or only one outcome) to train and evaluate a model honestly."""


def build_pipeline(references: list[str], c: float, seed: int) -> Pipeline:
    """Encoding plus regularised logistic regression; `references` are the dropped (baseline) levels."""
    encoder = OneHotEncoder(drop=references, handle_unknown="ignore", sparse_output=True)
    classifier = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    return Pipeline([("encode", encoder), ("classify", classifier)])


def _references(examples: pd.DataFrame, columns: list[str]) -> list[str]:
    return [examples[column].value_counts().idxmax() for column in columns]


def _fit(examples: pd.DataFrame, columns: list[str], c: float, seed: int) -> Pipeline:
    pipeline = build_pipeline(_references(examples, columns), c, seed)
    pipeline.fit(examples[columns], examples["won"].to_numpy())
    return pipeline


def predict(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """P(win) for feature rows (unseen levels count as the reference level)."""
    columns = list(pipeline.named_steps["encode"].feature_names_in_)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Found unknown categories")
        return pipeline.predict_proba(features[columns])[:, 1]


def _choose_regularization(examples: pd.DataFrame, columns: list[str], settings: ModelSettings) -> float:
    """The strongest penalty (smallest C) whose Brier score on the latest-closed share of `examples` is within one
    standard error of the best one's (the one-standard-error rule).

    Without real signal a weaker penalty wins the validation by chance now and then and then loses on the
    holdout; demanding it win by more than its own noise keeps the model at the base rate unless the data insists.
    The standard error is taken over deals, since a deal's landmark rows share one outcome.
    """
    grid = settings.regularization_grid
    if len(grid) == 1:
        return grid[0]
    split = examples["closed_date"].quantile(1 - settings.holdout_fraction)
    fit_rows, check_rows = examples[examples["closed_date"] <= split], examples[examples["closed_date"] > split]
    if fit_rows["won"].nunique() < 2 or check_rows.empty:
        return grid[0]
    outcomes = check_rows["won"].to_numpy(dtype=float)
    errors = np.array([(predict(_fit(fit_rows, columns, c, settings.seed), check_rows) - outcomes) ** 2 for c in grid])
    best = int(errors.mean(axis=1).argmin())
    _, deal_index = np.unique(check_rows["deal_id"].to_numpy(), return_inverse=True)
    for position, c in enumerate(grid[: best + 1]):
        per_deal = np.bincount(deal_index, weights=errors[position] - errors[best])
        excess = per_deal.sum() / len(outcomes)
        standard_error = np.sqrt(len(per_deal)) * per_deal.std(ddof=1) / len(outcomes) if len(per_deal) > 1 else 0.0
        if excess <= standard_error:
            return c
    return grid[best]


def train(history: pd.DataFrame, as_of: date, space: FeatureSpace, settings: ModelSettings,
          metrics: MetricsSettings) -> TrainedModel:  # fmt: skip
    """Evaluate on a time-ordered holdout, then refit on all history and explain the refit model.

    A holdout AUC above `settings.leak_auc` drops the field that best separates the outcome on its own and tries
    again (up to three fields); if the skill is still too good to be true, the model is refused.
    """
    if len(history) < settings.min_training_deals or history["won"].nunique() < 2:
        raise NotEnoughHistory(f"{len(history)} closed deals as of {as_of}; a model needs at least "
                               f"{settings.min_training_deals} with both outcomes")  # fmt: skip
    leaks: list[str] = []
    for _ in range(4):
        examples = landmark_examples(history, space)
        evaluation, holdout = _holdout_evaluation(history, examples, feature_columns(space), settings, metrics)
        auc = evaluation["auc"]["auc"]
        if auc is None or auc <= settings.leak_auc:
            break
        suspect = _most_separating(examples, space)
        if suspect is None or len(leaks) == 3:
            why = ("no single field explains it" if suspect is None
                   else "dropping the three most separating fields did not bring it down")  # fmt: skip
            leaks.append(f"Refused: holdout AUC {auc:.3f} is too good to be true for a sales forecast, and {why}. "
                         f"Some fields likely encode the outcome; check the layout's fields.")  # fmt: skip
            return _refused(history, examples, as_of, space, evaluation, leaks)
        dimension, alone = suspect
        label = space.info(dimension).label
        leaks.append(f"{label} dropped: the model reached holdout AUC {auc:.3f} with it (too good to be true), "
                     f"and it alone separates won from lost with AUC {alone:.3f}: it likely encodes the outcome.")  # fmt: skip
        space = space.without(dimension, f"treated as a leak: with it the model reached holdout AUC {auc:.3f}, "
                                         f"too good to be true (alone: AUC {alone:.3f})")  # fmt: skip
    columns = feature_columns(space)
    has_skill = evaluation["auc"]["low"] is not None and evaluation["auc"]["low"] > 0.5 and evaluation["brier_skill"] > 0
    pipeline = _fit(examples, columns, evaluation["regularization_c"], settings.seed)
    drivers = _drivers(pipeline, examples, space, evaluation["regularization_c"], metrics, has_skill)
    shares = {int(landmark): {c: rows[c].value_counts(normalize=True).to_dict() for c in space.dimensions}
              for landmark, rows in examples.groupby("landmark")}  # fmt: skip
    return TrainedModel(
        pipeline=pipeline, as_of=as_of, training_shares=shares, space=space,
        train_from=history["closed_date"].min().date(), train_to=history["closed_date"].max().date(),
        deals=len(history), examples=len(examples), base_rate=float(examples["won"].mean()),
        evaluation=evaluation, has_skill=has_skill, verdict=_verdict(evaluation, has_skill, leaks), drivers=drivers,
        typical_effects=_typical_effects(pipeline, examples, space), holdout_risk=holdout["risk"],
        holdout_lost=holdout["lost"], holdout_deals=holdout["deals"], leaks=leaks,
    )  # fmt: skip


def _refused(history: pd.DataFrame, examples: pd.DataFrame, as_of: date, space: FeatureSpace, evaluation: dict,
             leaks: list[str]) -> TrainedModel:  # fmt: skip
    """A model that must not be used: kept only so its refusal is on record with the evaluation behind it."""
    verdict = " ".join(leaks) + " No field is used for scores or findings; scores use the win rate of deals still open at the same age."
    return TrainedModel(
        pipeline=None, as_of=as_of, space=space, train_from=history["closed_date"].min().date(),
        train_to=history["closed_date"].max().date(), deals=len(history), examples=len(examples),
        base_rate=float(examples["won"].mean()), evaluation=evaluation, has_skill=False, verdict=verdict,
        leaks=leaks, refused=True,
    )  # fmt: skip


def _most_separating(examples: pd.DataFrame, space: FeatureSpace) -> tuple[str, float] | None:
    """The field that alone best separates won from lost (one row per deal), if any does well at all."""
    first = examples[examples["landmark"] == 0]
    won = first["won"].to_numpy(dtype=bool)
    scored = []
    for info in space.fields:
        auc = single_field_auc(replace(info, kind="category"), first[info.dimension], won)  # bands are categories
        if auc is not None:
            scored.append((auc, info.dimension))
    if not scored:
        return None
    auc, dimension = max(scored)
    return (dimension, auc) if auc >= 0.8 else None


def _typical_effects(pipeline: Pipeline, examples: pd.DataFrame, space: FeatureSpace) -> dict:
    """Mean coefficient of each dimension among the training rows at each landmark."""
    coefficients = _level_coefficients(pipeline)
    typical = {}
    for landmark, rows in examples.groupby("landmark"):
        typical[int(landmark)] = {
            dimension: float(rows[dimension].map(coefficients[dimension]).fillna(0.0).mean())
            for dimension in space.dimensions
        }
    return typical


def _level_coefficients(pipeline: Pipeline) -> dict[str, dict[str, float]]:
    """dimension → level → coefficient (0 for the reference level)."""
    encoder: OneHotEncoder = pipeline.named_steps["encode"]
    classifier: LogisticRegression = pipeline.named_steps["classify"]
    result, position = {}, 0
    for column, categories, dropped in zip(encoder.feature_names_in_, encoder.categories_, encoder.drop_idx_):
        levels = {}
        for index, level in enumerate(categories):
            if index == dropped:
                levels[str(level)] = 0.0
                continue
            levels[str(level)] = float(classifier.coef_[0][position])
            position += 1
        result[str(column)] = levels
    return result


def level_coefficients(model: TrainedModel) -> dict[str, dict[str, float]]:
    return _level_coefficients(model.pipeline)


def _holdout_evaluation(history: pd.DataFrame, examples: pd.DataFrame, columns: list[str], settings: ModelSettings,
                        metrics: MetricsSettings) -> tuple[dict, dict]:  # fmt: skip
    split = history["closed_date"].quantile(1 - settings.holdout_fraction)
    train_rows = examples[examples["closed_date"] <= split]
    test_rows = examples[examples["closed_date"] > split]
    if train_rows["won"].nunique() < 2 or test_rows["won"].nunique() < 2:
        raise NotEnoughHistory("the time-ordered holdout has only one outcome on one side")
    c = _choose_regularization(train_rows, columns, settings)
    pipeline = _fit(train_rows, columns, c, settings.seed)
    predicted = predict(pipeline, test_rows)
    outcomes = test_rows["won"].to_numpy()
    base_rate = float(train_rows["won"].mean())
    model_brier, base_brier = brier(outcomes, predicted), brier(outcomes, np.full(len(outcomes), base_rate))
    rng = np.random.default_rng(settings.seed)
    return {
        "split_date": split.date().isoformat(), "regularization_c": c,
        "train_deals": int(train_rows["deal_id"].nunique()), "test_deals": int(test_rows["deal_id"].nunique()),
        "test_examples": int(len(test_rows)),
        "auc": auc_with_interval(outcomes, predicted, test_rows["deal_id"].to_numpy(), settings.bootstrap_samples,
                                 rng, metrics.confidence),
        "brier": model_brier, "base_rate_brier": base_brier, "brier_skill": 1 - model_brier / base_brier,
        "calibration": calibration_table(outcomes, predicted, settings.calibration_bins),
    }, {"risk": 1 - predicted, "lost": ~outcomes.astype(bool), "deals": test_rows["deal_id"].to_numpy()}  # fmt: skip


def _drivers(pipeline: Pipeline, examples: pd.DataFrame, space: FeatureSpace, c: float, metrics: MetricsSettings,
             has_skill: bool) -> list[Driver]:  # fmt: skip
    encoder: OneHotEncoder = pipeline.named_steps["encode"]
    classifier: LogisticRegression = pipeline.named_steps["classify"]
    columns = feature_columns(space)
    labels = {**{info.dimension: info.label for info in space.fields}, "age_band": "Age"}
    features = examples[columns]
    design = encoder.transform(features)
    probabilities = classifier.predict_proba(design)[:, 1]
    covariance = cluster_robust_covariance(design, examples["won"].to_numpy(dtype=float), probabilities,
                                           examples["deal_id"].to_numpy(), 1 / c)
    errors = np.sqrt(np.clip(np.diag(covariance)[1:], 0, None))
    z = stats.norm.ppf(0.5 + metrics.confidence / 2)
    at_creation = examples[examples["landmark"] == 0]
    deals_per_level = {column: at_creation[column].value_counts() for column in columns}
    deals_per_level["age_band"] = examples["age_band"].value_counts()  # one row per deal at each landmark
    raw = []
    position = 0
    for column, categories, dropped in zip(columns, encoder.categories_, encoder.drop_idx_):
        for index, level in enumerate(categories):
            if index == dropped:
                continue
            beta, error = float(classifier.coef_[0][position]), float(errors[position])
            position += 1
            p_value = float(2 * stats.norm.sf(abs(beta) / error)) if error > 0 else 1.0
            raw.append((column, str(level), str(categories[dropped]), beta, error, p_value,
                        int(deals_per_level[column].get(level, 0))))  # fmt: skip
    testable = [row for row in raw if row[6] >= metrics.min_sample]
    q_values = dict(zip((r[:2] for r in testable), benjamini_hochberg([r[5] for r in testable])))
    drivers = []
    for column, level, reference, beta, error, p_value, deals in raw:
        q_value = q_values.get((column, level))
        if q_value is None:
            status = INSUFFICIENT
        else:
            status = SIGNIFICANT if has_skill and q_value <= metrics.fdr_q else NOT_SIGNIFICANT
        drivers.append(Driver(column, level, reference, labels[column], beta, float(np.exp(beta)), float(np.exp(beta - z * error)),
                              float(np.exp(beta + z * error)), p_value, q_value, deals, status))  # fmt: skip
    return sorted(drivers, key=lambda d: (d.status != SIGNIFICANT, d.p_value))


def _verdict(evaluation: dict, has_skill: bool, leaks: list[str]) -> str:
    auc = evaluation["auc"]
    interval = f"{auc['auc']:.2f} (95% CI {auc['low']:.2f}–{auc['high']:.2f})" if auc["low"] is not None else "n/a"
    where = f"on the {evaluation['test_deals']:,} deals that closed last (after {evaluation['split_date']})"
    warning = (" Leak guard: " + " ".join(leaks)) if leaks else ""
    if has_skill:
        return (f"The model predicts outcomes better than the base rate {where}: AUC {interval}, "
                f"Brier skill {evaluation['brier_skill']:.1%}.{warning}")  # fmt: skip
    return (f"The model adds nothing over the base rate {where}: AUC {interval}, Brier score "
            f"{evaluation['brier']:.4f} vs {evaluation['base_rate_brier']:.4f} for the base rate. "
            f"Scores use segment win rates shrunk toward the overall rate instead.{warning}")  # fmt: skip

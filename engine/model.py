"""The win-rate model: chosen by evidence among two families, calibrated on later deals, proven on the latest.

History is cut by close date into three time-ordered slices: the earliest deals fit the candidates, the next
ones (validation) choose between them and calibrate the winner, the latest ones (holdout) measure how good the
chosen, calibrated model is — the only figure reported as its skill. The candidates are a regularised logistic
regression on one-hot levels and gradient-boosted trees (`engine.families`); the one with the lower Brier score on
the validation slice wins, and both are evaluated on the holdout so the runner-up's figures are on record too.

The model is used for scores only when it beats the base rate on the holdout by a margin its bootstrap interval
supports (the 95% interval of the Brier improvement, resampled by deal, lies above 0) and its AUC interval lies
above 0.5; otherwise scores fall back to segment win rates shrunk toward the overall rate. The production model is
the winner refitted on everything but the holdout and recalibrated on the holdout (the latest deals).

Beyond `max_training_deals` closed deals, the model is fitted on a random sample of that many (the same sample for
every fit): precision no longer limits it there, time does. Drivers (`engine.drivers`) are estimated separately,
unpenalised, so their intervals cover the true effects.

Skill that is too good to be true is treated as a leak: a holdout AUC above `leak_auc` means some field encodes
the outcome. The field that best separates won from lost on its own is dropped and the model refitted; if no
field explains it, the model is refused and scores fall back to history, saying why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date

import numpy as np
import pandas as pd
from scipy.special import expit

from salesintel.engine.drivers import INSUFFICIENT, NOT_SIGNIFICANT, SIGNIFICANT, Driver, estimate_drivers
from salesintel.engine.encoding import Coded, Encoding
from salesintel.engine.evaluation import DealResamples, auc_with_interval, brier, brier_gain_interval, calibration_table
from salesintel.engine.families import LOGISTIC, BoostedModel, FittedModel, LogisticModel, calibrate
from salesintel.engine.families import predict as predict_rows
from salesintel.engine.features import landmark_examples
from salesintel.engine.fields import FeatureSpace, single_field_auc
from salesintel.engine.settings import MetricsSettings, ModelSettings

__all__ = ["INSUFFICIENT", "NOT_SIGNIFICANT", "SIGNIFICANT", "Driver", "NotEnoughHistory", "TrainedModel", "train"]


@dataclass
class TrainedModel:
    """A fitted, calibrated model with everything needed to trust (or distrust) it, stored as a version."""

    predictor: FittedModel | None
    encoding: Encoding | None
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
    holdout_risk: np.ndarray | None = None
    holdout_lost: np.ndarray | None = None
    holdout_deals: np.ndarray | None = None
    """Holdout predictions (risk), outcomes (lost) and deal ids: what the risk rule's threshold is chosen from."""
    leaks: list[str] = field(default_factory=list)
    """What the leak guard did, in words (a dropped field, or a refusal)."""
    refused: bool = False

    @property
    def family(self) -> str | None:
        return self.predictor.family if self.predictor is not None else None

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """P(win) for feature rows (`engine.features`); a level never seen in training counts as the reference."""
        return predict_rows(self.predictor, self.encoding.codes(features))

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per row and field: the calibrated log-odds this field adds against a typical deal of the same age."""
        coded = self.encoding.codes(features)
        parts = self.predictor.contributions(coded, self.space.dimensions)
        return pd.DataFrame(parts, index=features.index)

    def summary(self) -> dict:
        """JSON-ready description (everything but the fitted model)."""
        return {
            "as_of": self.as_of.isoformat(),
            "train_from": self.train_from.isoformat(),
            "train_to": self.train_to.isoformat(),
            "deals": self.deals,
            "examples": self.examples,
            "base_rate": self.base_rate,
            "evaluation": self.evaluation,
            "has_skill": self.has_skill,
            "family": self.family,
            "verdict": self.verdict,
            "drivers": [asdict(d) for d in self.drivers],
            "leaks": self.leaks,
            "refused": self.refused,
            "features": [f.label for f in self.space.fields] if self.space else [],
        }


class NotEnoughHistory(Exception):
    """Too few closed deals (or only one outcome) to train and evaluate a model honestly."""


@dataclass(frozen=True)
class Slices:
    """Positions of landmark rows in the three time-ordered slices, and the dates that cut them."""

    fit: np.ndarray
    validation: np.ndarray
    holdout: np.ndarray
    validation_from: pd.Timestamp
    holdout_from: pd.Timestamp
    closed: np.ndarray
    """Closing date of every landmark row."""


def time_slices(history: pd.DataFrame, examples: pd.DataFrame, settings: ModelSettings) -> Slices:
    closed = history["closed_date"]
    holdout_from = closed.quantile(1 - settings.holdout_fraction)
    validation_from = closed.quantile(1 - settings.holdout_fraction - settings.validation_fraction)
    when = examples["closed_date"].to_numpy()
    fit = np.flatnonzero(when <= validation_from.to_datetime64())
    validation = np.flatnonzero((when > validation_from.to_datetime64()) & (when <= holdout_from.to_datetime64()))
    holdout = np.flatnonzero(when > holdout_from.to_datetime64())
    won = examples["won"].to_numpy()
    for name, rows in (("fitting", fit), ("validation", validation), ("holdout", holdout)):
        if len(np.unique(won[rows])) < 2:
            raise NotEnoughHistory(f"the time-ordered {name} slice has only one outcome")
    return Slices(fit, validation, holdout, validation_from, holdout_from, when)


def deal_codes(examples: pd.DataFrame) -> np.ndarray:
    """Each landmark row's deal as an integer, numbered in the order of the deal ids: what the bootstraps and tests
    by deal group on. Sorting a sample's text ids once here, not in each of them, saves about half a second at 1M
    deals; the numbering (hence every resample) is the one the text ids themselves would give."""
    return pd.factorize(examples["deal_id"], sort=True)[0]


def _sample(history: pd.DataFrame, settings: ModelSettings) -> pd.DataFrame:
    if len(history) <= settings.max_training_deals:
        return history
    return history.sample(settings.max_training_deals, random_state=settings.seed).sort_index()


def train(
    history: pd.DataFrame, as_of: date, space: FeatureSpace, settings: ModelSettings, metrics: MetricsSettings
) -> TrainedModel:
    """Choose, calibrate and evaluate a model as of `as_of`, then refit the winner for production.

    A holdout AUC above `settings.leak_auc` drops the field that best separates the outcome on its own and tries
    again (up to three fields); if the skill is still too good to be true, the model is refused.
    """
    if len(history) < settings.min_training_deals or history["won"].nunique() < 2:
        raise NotEnoughHistory(
            f"{len(history)} closed deals as of {as_of}; a model needs at least "
            f"{settings.min_training_deals} with both outcomes"
        )
    sample = _sample(history, settings)
    leaks: list[str] = []
    for _ in range(4):
        examples = landmark_examples(sample, space)
        slices = time_slices(sample, examples, settings)
        encoding = Encoding.fit(examples.iloc[np.concatenate([slices.fit, slices.validation])], space)
        coded, won = encoding.codes(examples).with_design(), examples["won"].to_numpy(dtype=bool)
        deals = deal_codes(examples)
        selection = _select(coded, won, deals, slices, space, settings, metrics)
        auc = selection.evaluation["auc"]["auc"]
        if auc is None or auc <= settings.leak_auc:
            break
        suspect = _most_separating(examples, space)
        if suspect is None or len(leaks) == 3:
            why = (
                "no single field explains it"
                if suspect is None
                else "dropping the three most separating fields did not bring it down"
            )
            leaks.append(
                f"Refused: holdout AUC {auc:.3f} is too good to be true for a sales forecast, and {why}. "
                f"Some fields likely encode the outcome; check the layout's fields."
            )
            return _refused(history, examples, as_of, space, selection.evaluation, leaks)
        dimension, alone = suspect
        label = space.info(dimension).label
        leaks.append(
            f"{label} dropped: the model reached holdout AUC {auc:.3f} with it (too good to be true), "
            f"and it alone separates won from lost with AUC {alone:.3f}: it likely encodes the outcome."
        )
        space = space.without(
            dimension,
            f"treated as a leak: with it the model reached holdout AUC {auc:.3f}, "
            f"too good to be true (alone: AUC {alone:.3f})",
        )
    evaluation = selection.evaluation
    has_skill = selection.has_skill
    production = _fit_family(
        selection.family, coded, won, np.concatenate([slices.fit, slices.validation]), space, settings, evaluation
    )
    calibrate(
        production, production.raw_log_odds(coded.take(slices.holdout)), won[slices.holdout], deals[slices.holdout]
    )
    drivers = estimate_drivers(sample, space, metrics, has_skill)
    shares = {
        int(landmark): {c: rows[c].value_counts(normalize=True).to_dict() for c in space.dimensions}
        for landmark, rows in examples.groupby("landmark")
    }
    return TrainedModel(
        predictor=production,
        encoding=encoding,
        as_of=as_of,
        training_shares=shares,
        space=space,
        train_from=history["closed_date"].min().date(),
        train_to=history["closed_date"].max().date(),
        deals=len(history),
        examples=len(examples),
        base_rate=float(examples["won"].mean()),
        evaluation=evaluation,
        has_skill=has_skill,
        verdict=_verdict(evaluation, has_skill, leaks),
        drivers=drivers,
        holdout_risk=selection.holdout_risk,
        holdout_lost=~won[slices.holdout],
        holdout_deals=deals[slices.holdout],
        leaks=leaks,
    )


@dataclass(frozen=True)
class Selection:
    family: str
    evaluation: dict
    has_skill: bool
    holdout_risk: np.ndarray


def _fit_family(
    family: str,
    coded: Coded,
    won: np.ndarray,
    rows: np.ndarray,
    space: FeatureSpace,
    settings: ModelSettings,
    evaluation: dict,
    check: np.ndarray | None = None,
) -> FittedModel:
    """Fit one family on `rows`. The trees' count is chosen on `check` rows when given (and recorded in
    `evaluation`), else taken from `evaluation`."""
    subset = coded.take(rows)
    if family == LOGISTIC:
        return LogisticModel.fit(subset, won[rows], evaluation["regularization_c"], settings.seed)
    tree_dimensions = tuple(f.dimension for f in space.fields if f.kind != "number")
    numbers = {f.dimension: f.name for f in space.fields if f.kind == "number"}
    if check is None:
        return BoostedModel.fit(subset, won[rows], tree_dimensions, numbers, settings.seed, evaluation["trees"])
    model = BoostedModel.fit_on_time(
        subset, won[rows], coded.take(check), won[check], tree_dimensions, numbers, settings.seed
    )
    evaluation["trees"] = model.trees
    return model


def _select(
    coded: Coded,
    won: np.ndarray,
    deal_ids: np.ndarray,
    slices: Slices,
    space: FeatureSpace,
    settings: ModelSettings,
    metrics: MetricsSettings,
) -> Selection:
    """Fit each family on the earliest slice, choose by Brier score on the validation slice, calibrate each there,
    and evaluate both on the holdout. `deal_ids` are `deal_codes` of the rows."""
    tuning = {"regularization_c": _choose_regularization(coded, won, deal_ids, slices, settings), "trees": None}
    validation_won, holdout_won = won[slices.validation], won[slices.holdout]
    base_rate = float(won[np.concatenate([slices.fit, slices.validation])].mean())
    rng = np.random.default_rng(settings.seed)  # the AUC's resamples, then the Brier gain's: the same for each family
    resamples = tuple(DealResamples.draw(deal_ids[slices.holdout], settings.bootstrap_samples, rng) for _ in range(2))
    candidates = []
    for family in settings.families:
        model = _fit_family(family, coded, won, slices.fit, space, settings, tuning, slices.validation)
        raw_validation = model.raw_log_odds(coded.take(slices.validation))
        calibrate(model, raw_validation, validation_won, deal_ids[slices.validation])
        predicted = predict_rows(model, coded.take(slices.holdout))
        report = _holdout_report(holdout_won, predicted, resamples, base_rate, settings, metrics)
        candidates.append((brier(validation_won, expit(raw_validation)), family, report, predicted))
    candidates.sort(key=lambda item: item[0])
    validation_brier, family, report, predicted = candidates[0]
    has_skill = report["auc"]["low"] is not None and report["auc"]["low"] > 0.5 and report["brier_gain"]["low"] > 0
    evaluation = {
        **report,
        "family": family,
        "calibration_method": "sigmoid (Platt) on the validation slice",
        "split_date": slices.holdout_from.date().isoformat(),
        "validation_from": slices.validation_from.date().isoformat(),
        **tuning,
        "train_deals": int(len(np.unique(deal_ids[slices.fit]))),
        "validation_deals": int(len(np.unique(deal_ids[slices.validation]))),
        "test_deals": int(len(np.unique(deal_ids[slices.holdout]))),
        "test_examples": int(len(slices.holdout)),
        "candidates": [
            {"family": f, "validation_brier": vb, "chosen": f == family, **_brief(r)} for vb, f, r, _ in candidates
        ],
    }
    return Selection(family, evaluation, has_skill, 1 - predicted)


def _brief(report: dict) -> dict:
    return {
        "auc": report["auc"],
        "brier": report["brier"],
        "brier_skill": report["brier_skill"],
        "brier_gain": report["brier_gain"],
        "calibration_error": report["calibration"]["expected_calibration_error"],
    }


def _holdout_report(
    won: np.ndarray,
    predicted: np.ndarray,
    resamples: tuple[DealResamples, DealResamples],
    base_rate: float,
    settings: ModelSettings,
    metrics: MetricsSettings,
) -> dict:
    """AUC, Brier score and gain over the base rate, calibration; `resamples` for the AUC and the gain."""
    base = np.full(len(won), base_rate)
    model_brier, base_brier = brier(won, predicted), brier(won, base)
    return {
        "auc": auc_with_interval(won, predicted, resamples[0], metrics.confidence),
        "brier": model_brier,
        "base_rate_brier": base_brier,
        "brier_skill": 1 - model_brier / base_brier,
        "brier_gain": brier_gain_interval(won, predicted, base, resamples[1], metrics.confidence),
        "calibration": calibration_table(won, predicted, settings.calibration_bins),
    }


def _choose_regularization(
    coded: Coded, won: np.ndarray, deal_ids: np.ndarray, slices: Slices, settings: ModelSettings
) -> float:
    """The strongest penalty (smallest C) whose Brier score on the latest-closed share of the fitting slice is within
    one standard error of the best one's (the one-standard-error rule).

    Without real signal a weaker penalty wins the validation by chance now and then and then loses on the
    holdout; demanding it win by more than its own noise keeps the model at the base rate unless the data insists.
    The standard error is taken over deals, since a deal's landmark rows share one outcome.
    """
    grid = settings.regularization_grid
    if len(grid) == 1:
        return grid[0]
    rows = slices.fit
    when = slices.closed[rows].astype("datetime64[ns]").astype(np.int64)
    split = np.quantile(when, 1 - settings.holdout_fraction)
    fit_rows, check_rows = rows[when <= split], rows[when > split]
    if len(np.unique(won[fit_rows])) < 2 or len(check_rows) == 0:
        return grid[0]
    outcomes = won[check_rows].astype(float)
    fit_coded, check_coded = coded.take(fit_rows), coded.take(check_rows)
    errors = np.array(
        [
            (predict_rows(LogisticModel.fit(fit_coded, won[fit_rows], c, settings.seed), check_coded) - outcomes) ** 2
            for c in grid
        ]
    )
    best = int(errors.mean(axis=1).argmin())
    _, deal_index = np.unique(deal_ids[check_rows], return_inverse=True)
    for position, c in enumerate(grid[: best + 1]):
        per_deal = np.bincount(deal_index, weights=errors[position] - errors[best])
        excess = per_deal.sum() / len(outcomes)
        standard_error = np.sqrt(len(per_deal)) * per_deal.std(ddof=1) / len(outcomes) if len(per_deal) > 1 else 0.0
        if excess <= standard_error:
            return c
    return grid[best]


def _refused(
    history: pd.DataFrame, examples: pd.DataFrame, as_of: date, space: FeatureSpace, evaluation: dict, leaks: list[str]
) -> TrainedModel:
    """A model that must not be used: kept only so its refusal is on record with the evaluation behind it."""
    verdict = (
        " ".join(leaks)
        + " No field is used for scores or findings; scores use the win rate of deals still open at the same age."
    )
    return TrainedModel(
        predictor=None,
        encoding=None,
        as_of=as_of,
        space=space,
        train_from=history["closed_date"].min().date(),
        train_to=history["closed_date"].max().date(),
        deals=len(history),
        examples=len(examples),
        base_rate=float(examples["won"].mean()),
        evaluation=evaluation,
        has_skill=False,
        verdict=verdict,
        leaks=leaks,
        refused=True,
    )


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


def _verdict(evaluation: dict, has_skill: bool, leaks: list[str]) -> str:
    auc = evaluation["auc"]
    interval = f"{auc['auc']:.2f} (95% CI {auc['low']:.2f}–{auc['high']:.2f})" if auc["low"] is not None else "n/a"
    where = f"on the {evaluation['test_deals']:,} deals that closed last (after {evaluation['split_date']})"
    gain = evaluation["brier_gain"]
    family = evaluation.get("family", LOGISTIC)
    others = [c for c in evaluation.get("candidates", []) if not c["chosen"]]
    runner = (
        f" It was chosen over {others[0]['family']} (holdout AUC {others[0]['auc']['auc']:.2f}) by Brier score "
        f"on the deals that closed before those."
        if others and others[0]["auc"]["auc"] is not None
        else ""
    )
    warning = (" Leak guard: " + " ".join(leaks)) if leaks else ""
    if has_skill:
        return (
            f"The model ({family}, calibrated) predicts outcomes better than the base rate {where}: AUC "
            f"{interval}, Brier skill {evaluation['brier_skill']:.1%} (improvement 95% CI "
            f"{gain['low']:+.4f} to {gain['high']:+.4f}), calibration error "
            f"{evaluation['calibration']['expected_calibration_error']:.3f}.{runner}{warning}"
        )
    return (
        f"The model adds nothing over the base rate {where}: the best family ({family}) reached AUC {interval}, "
        f"Brier score {evaluation['brier']:.4f} vs {evaluation['base_rate_brier']:.4f} for the base rate "
        f"(improvement 95% CI {gain['low']:+.4f} to {gain['high']:+.4f}, not above 0). Scores use segment win "
        f"rates shrunk toward the overall rate instead.{warning}"
    )

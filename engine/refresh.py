"""One refresh: take the newest snapshot, train (or reuse) the model as of a date, score, compute metrics, store.

The refresh is the unit everything downstream reads: its metrics, its scores and the model version behind them
are written in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import pandas as pd

from salesintel.engine import background, model_format
from salesintel.engine.anomalies import find_anomalies
from salesintel.engine.asof import AsOfView, data_span, view_as_of
from salesintel.engine.collection import cycle_collection_paused
from salesintel.engine.drift import drift_report
from salesintel.engine.evidence import Evidence, gather_evidence
from salesintel.engine.fields import AuditSettings, FeatureSpace, build_feature_space, candidate_fields
from salesintel.engine.metrics import compute_metrics, monthly_trend
from salesintel.engine.model import NotEnoughHistory, TrainedModel, train
from salesintel.engine.quality import WinProbabilities
from salesintel.engine.records import MetricsSummary
from salesintel.engine.risk_rule import TUNED_RULE, Tuning, at_risk, choose_risk_rule
from salesintel.engine.scoring import score_open_deals
from salesintel.engine.segments import compare_segments
from salesintel.engine.settings import AnomalySettings, MetricsSettings, ModelSettings, RiskRuleSettings
from salesintel.engine.store import Refresh, Snapshot, Store, StoredModel

DATA_ENDS_EARLY_DAYS = 7
"""When the export's last event is more than this many days before the snapshot was taken, the default as-of
date is that last event, not the snapshot date: otherwise every open deal would be aged by the silent gap."""


class RefreshError(Exception):
    """A refresh cannot run (no snapshot yet, a date before the data begins); the message says what to do."""


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    metrics: MetricsSettings
    model: ModelSettings
    anomalies: AnomalySettings = AnomalySettings()
    risk: RiskRuleSettings = RiskRuleSettings()
    background_from_deals: int = 50_000
    """From this many deals in a snapshot, the steps that need neither the model nor the scores (half the field
    audit; segments and evidence; trend and anomalies) run in forked processes beside the rest (see
    `engine.background`); below it, starting a process costs more than it saves."""


def _snapshot_and_date(store: Store, as_of: date | None) -> tuple[Snapshot, date, pd.DataFrame]:
    snapshot = store.latest_snapshot()
    if snapshot is None:
        raise RefreshError("the store holds no snapshot yet: run `salesintel ingest PATH` first")
    deals = store.deals(snapshot.id)
    if deals.empty:
        raise RefreshError(f"snapshot #{snapshot.id} has no valid deals (see its rejects)")
    as_of = as_of or default_as_of(snapshot, deals)
    first_created = deals["created_date"].min()
    if as_of < first_created.date():
        raise RefreshError(
            f"as-of date {as_of} is before the first deal in snapshot #{snapshot.id} (created {first_created:%Y-%m-%d})"
        )
    return snapshot, as_of, deals


def default_as_of(snapshot: Snapshot, deals: pd.DataFrame) -> date:
    """When the snapshot was taken, or the data's last event if the export ends well before that: an old export
    copied in today is answered as of its own last day, not with every open deal aged by the silent gap. (The
    service uses today in place of the taking date: `alerts.jobs.RefreshJob`.)"""
    return early_end(snapshot, deals) or snapshot.taken_at.date()


def early_end(snapshot: Snapshot, deals: pd.DataFrame) -> date | None:
    """The export's last event (a creation or a close) when it is more than `DATA_ENDS_EARLY_DAYS` before the
    snapshot was taken; None for an export that runs up to its taking."""
    taken = snapshot.taken_at.date()
    span = data_span(deals, taken)
    last = span[1].date() if span is not None else None
    return last if last is not None and (taken - last).days > DATA_ENDS_EARLY_DAYS else None


def feature_space(snapshot: Snapshot, view: AsOfView, settings: EngineSettings, fork: bool = False) -> FeatureSpace:
    """The refresh's fields, audited against the data as of its date (see `engine.fields`).

    The "recorded only on closed deals" check looks at deals still open in the snapshot: in a replay, a deal open
    at the as-of date that closed later already carries what was filled in at its close.
    """
    still_open = view.open[view.open_in_snapshot]
    return build_feature_space(
        candidate_fields(snapshot.fields),
        view.history,
        still_open,
        AuditSettings.of(settings.metrics, settings.model),
        fork,
    )


def train_model(store: Store, settings: EngineSettings, as_of: date | None, now: datetime) -> StoredModel:
    """Train a new model version on the newest snapshot's history as of `as_of` and store it."""
    snapshot, as_of, deals = _snapshot_and_date(store, as_of)
    view = view_as_of(deals, as_of, snapshot.taken_at.date())
    try:
        model = train(view.history, as_of, feature_space(snapshot, view, settings), settings.model, settings.metrics)
    except NotEnoughHistory as error:
        raise RefreshError(f"cannot train a model: {error}") from error
    return store.save_model(snapshot.id, as_of, now, model.summary(), model_format.encode(model))


def refresh(
    store: Store,
    settings: EngineSettings,
    as_of: date | None,
    now: datetime,
    progress: Callable[[str, float], None] | None = None,
) -> Refresh:
    """Compute metrics and scores for the newest snapshot as of `as_of` (default: when it was taken, or the data's
    last event if the export ends well before that).

    Reuses the newest model trained on the same snapshot as of the same date, or trains one. `progress` is told
    each step's name and its duration in seconds as it finishes (a refresh of a million deals takes a while).
    """
    with cycle_collection_paused(), background.StepGroup() as forked:
        return _refresh(store, settings, as_of, now, _Steps(progress), forked)


def _refresh(
    store: Store,
    settings: EngineSettings,
    as_of: date | None,
    now: datetime,
    step: _Steps,
    forked: background.StepGroup,
) -> Refresh:
    snapshot, as_of, deals = _snapshot_and_date(store, as_of)
    view = view_as_of(deals, as_of, snapshot.taken_at.date())
    step.done("read the snapshot")
    large = len(deals) >= settings.background_from_deals
    audited = feature_space(snapshot, view, settings, fork=large)
    step.done("audit the fields")
    # Segments and evidence, and the trend and anomalies, of the audited fields, beside the model's training: kept
    # when the model leaves the fields as audited (the usual case), computed again for the fields it kept otherwise.
    early = forked.start(_segments_and_evidence, view.history, audited, settings.metrics, fork=large)
    findings = forked.start(_findings, deals, view, as_of, snapshot.taken_at.date(), settings, audited, fork=large)
    stored, model, model_note = _model_for(store, settings, snapshot, as_of, view.history, audited, now)
    step.done(
        "train the model" if model is not None and stored is not None and stored.trained_at == now else "load the model"
    )
    space = space_after_model(audited, model)
    if space == audited:
        segments, evidence = early.result()
    else:
        early.discard()
        findings.discard()
        findings = forked.start(_findings, deals, view, as_of, snapshot.taken_at.date(), settings, space, fork=large)
        segments, evidence = _segments_and_evidence(view.history, space, settings.metrics)
    usable = model is not None and not model.refused
    drift = (
        drift_report(model, view.open, view.history, settings.metrics.min_sample, settings.model.seed)
        if usable
        else None
    )
    step.done("segments and evidence (beside training)" if large and space == audited else "segments and evidence")
    scores = score_open_deals(
        view, evidence, model, stored.id if stored else None, space, settings.model, settings.metrics
    )
    step.done(f"score {len(scores):,} open deals")
    probabilities = WinProbabilities(pd.Series(scores.p_win, index=view.open.index, dtype=float), scores.method)
    rule = risk_rule_for(
        model, model_note, settings, latest_tuning(store, as_of) if settings.risk.apply_tuning else None
    )
    flagged = at_risk(scores.risk, scores.stale, rule)
    rule["open_flagged"] = {
        "count": int(flagged.sum()),
        "of": len(scores),
        "value": float(scores.deal_amount[flagged].sum()),
    }
    step.done("risk rule")

    def metrics_when_scores_are_written() -> MetricsSummary:
        """Called by the store once the scores are written, in the same transaction: writing them overlaps the
        findings still running in their process."""
        step.done("write the scores")
        trend, anomalies = findings.result()
        step.done("trend and anomalies (beside training, scoring and writing)" if large else "trend and anomalies")
        metrics = compute_metrics(
            deals, as_of, snapshot.taken_at.date(), settings.metrics, space, probabilities, segments, trend, view
        )
        metrics["snapshot"] = {"id": snapshot.id, "source": snapshot.source, "taken_at": snapshot.taken_at.isoformat()}
        metrics["model"] = _model_report(stored, model, model_note, scores.method)
        metrics["evidence"] = evidence.to_dict() if evidence else None
        metrics["drift"], metrics["anomalies"] = drift, anomalies
        metrics["risk_rule"] = rule
        step.done("metrics")
        return MetricsSummary.from_json(metrics)

    model_id = stored.id if stored else None
    refresh_id, metrics = store.save_refresh(snapshot.id, as_of, now, metrics_when_scores_are_written, model_id, scores)
    step.done("commit")
    return Refresh(refresh_id, snapshot.id, as_of, now, metrics, model_id)


def _segments_and_evidence(
    history: pd.DataFrame, space: FeatureSpace, settings: MetricsSettings
) -> tuple[list, Evidence | None]:
    """Each field's levels tested against the rest, and the evidence reasons cite (pure: may run in a fork)."""
    if not len(history):
        return [], None
    segments = compare_segments(history, space, settings)
    return segments, gather_evidence(history, space, segments, settings.confidence)


def _findings(
    deals: pd.DataFrame,
    view: AsOfView,
    as_of: date,
    snapshot_taken: date,
    settings: EngineSettings,
    space: FeatureSpace,
) -> tuple[list[dict], dict]:
    """The monthly trend and the anomalies: what a refresh finds that depends on neither the model nor the scores
    (pure, so it may run in a forked process)."""
    trend = monthly_trend(deals, as_of, snapshot_taken, settings.metrics, space)
    created = deals[deals["created_date"] <= pd.Timestamp(as_of)]
    return trend, find_anomalies(view.history, created, as_of, settings.anomalies, space)


class _Steps:
    """Times the steps of one refresh for a progress callback (the clock is only read, never needed for results)."""

    def __init__(self, progress: Callable[[str, float], None] | None):
        self.progress = progress
        self.started = time.perf_counter()

    def done(self, name: str) -> None:
        if self.progress is not None:
            now = time.perf_counter()
            self.progress(name, now - self.started)
            self.started = now


def space_after_model(audited: FeatureSpace, model: TrainedModel | None) -> FeatureSpace:
    """The audited fields minus any the model does not use (its leak guard dropped them, or it was trained without
    them); none at all when it refused the model. A reused model's landmarks and stale age are kept, so scores and
    metrics age deals the same way."""
    if model is None or model.space is None:
        return audited
    kept = {info.dimension for info in model.space.fields}
    space = replace(
        audited,
        landmarks=model.space.landmarks,
        supported_age=model.space.supported_age,
        landmarks_from_data=model.space.landmarks_from_data,
    )
    for info in audited.fields:
        if info.dimension not in kept:
            reason = next(
                (e.reason for e in model.space.excluded if e.field == info.name),
                "not used by the model this refresh reuses (trained before the field passed the audit)",
            )
            space = space.without(info.dimension, reason)
    if model.refused:
        for info in space.fields:
            space = space.without(info.dimension, "not used: the model was refused as a likely leak (see the model)")
    return space


def latest_tuning(store: Store, as_of: date) -> Tuning | None:
    """The threshold's feedback-tuned offset in force at `as_of` (`alerts.tuning`): the last change that applies
    from that date or before (`ThresholdChange.applies_from`)."""
    changes = [c for c in store.alerts.threshold_changes(TUNED_RULE) if c.applies_from <= as_of]
    if not changes:
        return None
    last = changes[-1]
    return Tuning(last.threshold_offset, last.min_threshold, last.max_threshold, last.id, last.decided_at.isoformat())


def risk_rule_for(
    model: TrainedModel | None, note: str | None, settings: EngineSettings, tuning: Tuning | None = None
) -> dict:
    if model is None:
        why = f"there is no model ({note})"
    elif model.refused:
        why = "the model was refused as a likely leak"
    else:
        why = "the model adds nothing over the base rate on the time-ordered holdout"
    return choose_risk_rule(
        bool(model and model.has_skill),
        getattr(model, "holdout_risk", None),
        getattr(model, "holdout_lost", None),
        getattr(model, "holdout_deals", None),
        settings.risk,
        settings.model.seed,
        why,
        tuning,
    )


def _model_for(
    store: Store,
    settings: EngineSettings,
    snapshot: Snapshot,
    as_of: date,
    history: pd.DataFrame,
    space: FeatureSpace,
    now: datetime,
) -> tuple[StoredModel | None, TrainedModel | None, str | None]:
    stored = store.latest_model(as_of, as_of - timedelta(days=settings.model.retrain_every_days), snapshot.id)
    if stored is not None:
        model = _load(stored)
        if model is not None and {f.dimension for f in model.space.fields} <= set(space.dimensions):
            return stored, model, None
    try:
        trained = train(history, as_of, space, settings.model, settings.metrics)
    except NotEnoughHistory as error:
        return None, None, str(error)
    stored = store.save_model(snapshot.id, as_of, now, trained.summary(), model_format.encode(trained))
    return stored, trained, None


def _load(stored: StoredModel) -> TrainedModel | None:
    """A stored model, or None when it cannot serve this salesintel (it is then retrained, and the refresh says a
    new version was trained): one in an older format (see `engine.model_format`: pickles are never loaded), or one
    that predates the feature space."""
    model = model_format.decode(stored.pipeline, stored.version)
    return model if model is not None and getattr(model, "space", None) is not None else None


def _model_report(stored: StoredModel | None, model: TrainedModel | None, note: str | None, method: str) -> dict:
    if model is None:
        return {"version": None, "verdict": f"No model: {note}.", "method": method, "has_skill": False}
    return {"version": stored.version, "method": method, **model.summary()}

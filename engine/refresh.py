"""One refresh: take the newest snapshot, train (or reuse) the model as of a date, score, compute metrics, store.

The refresh is the unit everything downstream reads: its metrics, its scores and the model version behind them
are written in one transaction.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from engine.anomalies import find_anomalies
from engine.asof import view_as_of
from engine.drift import drift_report
from engine.evidence import gather_evidence
from engine.metrics import compute_metrics
from engine.model import NotEnoughHistory, TrainedModel, train
from engine.quality import WinProbabilities
from engine.scoring import score_open_deals
from engine.settings import AnomalySettings, MetricsSettings, ModelSettings
from engine.store import Refresh, Snapshot, Store, StoredModel


class RefreshError(Exception):
    """A refresh cannot run (no snapshot yet, a date before the data begins); the message says what to do."""


@dataclass(frozen=True)
class EngineSettings:
    metrics: MetricsSettings
    model: ModelSettings
    anomalies: AnomalySettings = AnomalySettings()


def _snapshot_and_date(store: Store, as_of: date | None) -> tuple[Snapshot, date, pd.DataFrame]:
    snapshot = store.latest_snapshot()
    if snapshot is None:
        raise RefreshError("the store holds no snapshot yet: run `salesintel ingest PATH` first")
    as_of = as_of or snapshot.taken_at.date()
    deals = store.deals(snapshot.id)
    if deals.empty:
        raise RefreshError(f"snapshot #{snapshot.id} has no valid deals (see its rejects)")
    first_created = deals["created_date"].min()
    if as_of < first_created.date():
        raise RefreshError(f"as-of date {as_of} is before the first deal in snapshot #{snapshot.id} "
                           f"(created {first_created:%Y-%m-%d})")  # fmt: skip
    return snapshot, as_of, deals


def train_model(store: Store, settings: EngineSettings, as_of: date | None, now: datetime) -> StoredModel:
    """Train a new model version on the newest snapshot's history as of `as_of` and store it."""
    snapshot, as_of, deals = _snapshot_and_date(store, as_of)
    history = view_as_of(deals, as_of, snapshot.taken_at.date()).history
    try:
        model = train(history, as_of, settings.model, settings.metrics)
    except NotEnoughHistory as error:
        raise RefreshError(f"cannot train a model: {error}") from error
    return store.save_model(snapshot.id, as_of, now, model.summary(), pickle.dumps(model))


def refresh(store: Store, settings: EngineSettings, as_of: date | None, now: datetime) -> Refresh:
    """Compute metrics and scores for the newest snapshot as of `as_of` (default: when it was taken).

    Reuses the newest model trained on the same snapshot as of the same date, or trains one.
    """
    snapshot, as_of, deals = _snapshot_and_date(store, as_of)
    view = view_as_of(deals, as_of, snapshot.taken_at.date())
    stored, model, model_note = _model_for(store, settings, snapshot, as_of, view.history, now)
    evidence = gather_evidence(view.history, settings.model.landmarks, settings.metrics.amount_bands) if len(view.history) else None
    scores = score_open_deals(view, evidence, model, stored.id if stored else None, settings.model, settings.metrics)
    method = scores[0].method if scores else "none (no open deals)"
    probabilities = WinProbabilities(pd.Series([s.p_win for s in scores], index=view.open.index, dtype=float), method)
    metrics = compute_metrics(deals, as_of, snapshot.taken_at.date(), settings.metrics, probabilities)
    metrics["snapshot"] = {"id": snapshot.id, "source": snapshot.source, "taken_at": snapshot.taken_at.isoformat()}
    metrics["model"] = _model_report(stored, model, model_note, method)
    metrics["evidence"] = evidence.to_dict() if evidence else None
    metrics["drift"] = drift_report(model, model.training_shares, view.open, view.history, settings.model.landmarks,
                                    settings.metrics.amount_bands, settings.metrics.min_sample,
                                    settings.model.seed) if model else None  # fmt: skip
    created = deals[deals["created_date"] <= pd.Timestamp(as_of)]
    metrics["anomalies"] = find_anomalies(view.history, created, as_of, settings.anomalies)
    model_id = stored.id if stored else None
    refresh_id = store.save_refresh(snapshot.id, as_of, now, metrics, model_id, [s.to_dict() for s in scores])
    return Refresh(refresh_id, snapshot.id, as_of, now, metrics, model_id)


def _model_for(store: Store, settings: EngineSettings, snapshot: Snapshot, as_of: date, history: pd.DataFrame,
               now: datetime) -> tuple[StoredModel | None, TrainedModel | None, str | None]:  # fmt: skip
    stored = store.latest_model(as_of, as_of - timedelta(days=settings.model.retrain_every_days))
    if stored is None:
        try:
            trained = train(history, as_of, settings.model, settings.metrics)
        except NotEnoughHistory as error:
            return None, None, str(error)
        stored = store.save_model(snapshot.id, as_of, now, trained.summary(), pickle.dumps(trained))
    return stored, pickle.loads(stored.pipeline), None


def _model_report(stored: StoredModel | None, model: TrainedModel | None, note: str | None, method: str) -> dict:
    if model is None:
        return {"version": None, "verdict": f"No model: {note}.", "method": method, "has_skill": False}
    return {"version": stored.version, "method": method, **model.summary()}

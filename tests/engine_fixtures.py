"""Shared builders for engine tests: synthetic CRM data turned into the frame `Store.deals` returns."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from salesintel.engine.deal_frames import finish
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.settings import IngestSettings
from salesintel.engine.synth import SynthSpec, generate

ROOT = Path(__file__).resolve().parents[1]


def as_store_frame(crm: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """Run CRM rows through the real ingest, then finish the frame as `Store.deals` does (dates, categories)."""
    path = tmp_path / "crm.csv"
    crm.to_csv(path, index=False)
    return finish(read_snapshot(path, IngestSettings()).deals, {}, {})


def synthetic(tmp_path: Path, deals: int, seed: int, noise: bool = False):
    data = generate(SynthSpec(deals=deals, seed=seed, noise=noise))
    return data, as_store_frame(data.crm, tmp_path)


def bundled() -> pd.DataFrame:
    return finish(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()).deals, {}, {})


LATER = date(2030, 1, 1)
"""A snapshot date after every as-of date used in tests: replay mode, stage unknown."""


def space_for(view, model_settings=None, metrics_settings=None, fields: dict | None = None):
    """The audited feature space of a view, as a refresh builds it (built-in fields plus `fields`)."""
    from salesintel.engine.fields import AuditSettings, build_feature_space, candidate_fields
    from salesintel.engine.settings import MetricsSettings, ModelSettings

    audit = AuditSettings.of(metrics_settings or MetricsSettings(), model_settings or ModelSettings())
    return build_feature_space(candidate_fields(fields or {}), view.history, view.open, audit)

"""Typed settings of the alert engine (validated once from config.yaml, see `bot/config.py`)."""

from __future__ import annotations

from pydantic import Field

from engine.settings import FrozenSettings


class RealtimeRuleSettings(FrozenSettings):
    """High-value deal at risk: both thresholds must be exceeded."""

    min_amount: float = Field(50_000, ge=0)
    min_risk: float = Field(0.70, gt=0, lt=1)


class AlertsSettings(FrozenSettings):
    realtime: RealtimeRuleSettings = RealtimeRuleSettings()

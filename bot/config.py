"""Load and validate config.yaml once at start-up into typed settings."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError
from salesintel.alerts.settings import AlertsSettings
from salesintel.engine.settings import AnomalySettings, FrozenSettings, IngestSettings, MetricsSettings, ModelSettings


class StoreSettings(FrozenSettings):
    path: str = "var/salesintel.db"


class BotSettings(FrozenSettings):
    visibility: Literal["everyone", "owner_and_managers"] = "owner_and_managers"
    """Who may see a deal: everyone, or only its owner, the owner's managers and executives."""
    executives: list[str] = Field(default_factory=list)
    """Slack user ids that see everything (the CRO, VPs)."""
    terminal_user: str = "UTERMINAL"
    """Who a command typed in terminal mode runs as; treated as an executive."""


class Settings(FrozenSettings):
    timezone: str = "UTC"
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    metrics: MetricsSettings = MetricsSettings()
    model: ModelSettings = ModelSettings()
    anomalies: AnomalySettings = AnomalySettings()
    alerts: AlertsSettings = AlertsSettings()
    bot: BotSettings = BotSettings()


class ConfigError(Exception):
    """config.yaml is missing or invalid; the message names the file and each bad field."""


def default_config_text() -> str:
    """The built-in configuration, shipped with the package: what `salesintel init` writes and what a command uses
    when there is no config.yaml to read."""
    return resources.files("salesintel.bot").joinpath("default_config.yaml").read_text()


def load_default_settings() -> Settings:
    return _parse(default_config_text(), "built-in defaults")


def load_settings(path: Path) -> Settings:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from error
    return _parse(text, str(path))


def _parse(text: str, path: str) -> Settings:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"{path}: {problems}") from error


def store_path(settings: Settings, config_path: Path) -> Path:
    """SALESINTEL_DB wins; a relative store.path is taken from the config file's folder."""
    path = Path(os.environ.get("SALESINTEL_DB") or settings.store.path)
    return path if path.is_absolute() else config_path.parent / path

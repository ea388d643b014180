"""Load and validate config.yaml once at start-up into typed settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import Field, ValidationError

from salesintel.alerts.settings import AlertsSettings
from salesintel.engine.settings import AnomalySettings, FrozenSettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store.connections import StoreTarget

if TYPE_CHECKING:
    from salesintel.engine.warehouse import WarehouseSource


class StoreSettings(FrozenSettings):
    path: str = "var/salesintel.db"
    """The SQLite file (relative to the config file), when no `url` is given."""
    url: str | None = None
    """A PostgreSQL URL (`postgresql://user@host/db`) for a store several replicas share; keep passwords out of the
    file: SALESINTEL_DATABASE_URL overrides it."""
    keep_snapshots: int = Field(10, ge=1)
    """`salesintel prune` keeps this many newest snapshots (with their refreshes, scores and models)."""
    keep_days: int = Field(90, ge=1)
    """... and delivered messages and scheduled-run records this many days."""


class DashboardSettings(FrozenSettings):
    public_url: str | None = None
    """Where people reach this service (e.g. https://salesintel.example.com): sign-in links point there. Unset:
    http://localhost:<port>, for a trial on one machine."""
    link_minutes: float = Field(10, gt=0, le=60)
    """A sign-in link from `/salesintel dashboard` works once, within this long."""
    session_hours: float = Field(8, gt=0, le=24 * 7)
    """How long a browser stays signed in."""


class BotSettings(FrozenSettings):
    visibility: Literal["everyone", "owner_and_managers"] = "owner_and_managers"
    """Who may see a deal: everyone, or only its owner, the owner's managers and executives."""
    executives: list[str] = Field(default_factory=list)
    """Slack user ids that see everything (the CRO, VPs)."""
    terminal_user: str = "UTERMINAL"
    """Who a command typed in terminal mode runs as; treated as an executive."""
    answer_budget_seconds: float = Field(2.0, gt=0, le=2.8)
    """A slash command's answer not ready within this long is acknowledged at once ("working on it") and posted to
    the command's response_url when ready: Slack gives up on an acknowledgement after 3 seconds."""
    dashboard: DashboardSettings = DashboardSettings()


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


def store_target(settings: Settings, config_path: Path) -> StoreTarget:
    """Where the store lives, first found of: SALESINTEL_DATABASE_URL, SALESINTEL_DB (a SQLite path), store.url,
    store.path. A relative SQLite path is taken from the config file's folder."""
    chosen = (
        os.environ.get("SALESINTEL_DATABASE_URL")
        or os.environ.get("SALESINTEL_DB")
        or settings.store.url
        or settings.store.path
    )
    target = StoreTarget.parse(chosen)
    if target.path is not None and not target.path.is_absolute():
        return StoreTarget(path=config_path.parent / target.path)
    return target


def warehouse_source(settings: Settings, config_path: Path) -> WarehouseSource | None:
    """The configured SQL source, or None: SALESINTEL_WAREHOUSE_URL (or ingest.warehouse.url) with
    ingest.warehouse.query (or the file query_file names, relative to the config file)."""
    from salesintel.engine.warehouse import WarehouseSource

    config = settings.ingest.warehouse
    url = os.environ.get("SALESINTEL_WAREHOUSE_URL") or config.url
    if not url:
        return None
    if bool(config.query) == bool(config.query_file):
        raise ConfigError("ingest.warehouse: give exactly one of query and query_file")
    query = config.query
    if config.query_file:
        path = Path(config.query_file)
        path = path if path.is_absolute() else config_path.parent / path
        try:
            query = path.read_text()
        except OSError as error:
            raise ConfigError(f"ingest.warehouse.query_file: {path}: cannot read ({error.strerror})") from error
    return WarehouseSource(url, query, config.layout)


DEFAULT_SLACK_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class Credentials:
    """Slack credentials, read from the environment once at start-up and never from config.yaml: what mode the
    service runs in, what `deliver` sends with, and which strings the logs must never show."""

    bot_token: str | None
    signing_secret: str | None
    app_token: str | None
    api_url: str = DEFAULT_SLACK_API_URL
    smtp_password: str | None = None
    """SALESINTEL_SMTP_PASSWORD: the mail server login for email digests (`alerts.email.smtp.username`)."""
    dashboard_secret: str | None = None
    """SALESINTEL_DASHBOARD_SECRET: signs dashboard links and sessions (else derived from the Slack secret)."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        return cls(
            environ.get("SLACK_BOT_TOKEN") or None,
            environ.get("SLACK_SIGNING_SECRET") or None,
            environ.get("SLACK_APP_TOKEN") or None,
            environ.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL,
            environ.get("SALESINTEL_SMTP_PASSWORD") or None,
            environ.get("SALESINTEL_DASHBOARD_SECRET") or None,
        )

    @property
    def mode(self) -> str:
        if self.app_token and self.bot_token:
            return "socket"
        if self.bot_token and self.signing_secret:
            return "http"
        return "terminal"

    @property
    def secrets(self) -> list[str]:
        values = (self.bot_token, self.signing_secret, self.app_token, self.smtp_password, self.dashboard_secret)
        return [value for value in values if value]


@dataclass(frozen=True)
class Invocation:
    """What every command starts from, built once when the command starts: the settings, the config file they came
    from (relative paths in them are taken from its folder), and the credentials."""

    settings: Settings
    config_path: Path
    credentials: Credentials

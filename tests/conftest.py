"""Shared fixtures: the `salesintel` command run in this process, and the bundled data loaded and refreshed once."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from salesintel.bot.cli import main
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests.engine_fixtures import ROOT
from tests.postgres_server import BACKENDS, new_store_target


@dataclass(frozen=True)
class Ran:
    """What a run of the command left: its exit status and what it printed on each stream."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def salesintel():
    """Run `salesintel --config CONFIG ARGS…` in this process (click's CliRunner) from the repository's root, with
    its store in `folder` (or at `db`, or at the PostgreSQL `url`): as a user would, minus a new interpreter's
    start-up. `tests/test_launch.py` and a few others prove the installed entry point itself in a subprocess."""

    def run(
        folder: Path, *args: str, config: Path = ROOT / "config.yaml", db: Path | None = None, url: str | None = None
    ) -> Ran:
        runner = CliRunner()
        env = {"SALESINTEL_DB": str(db or folder / "s.db"), "SALESINTEL_DATABASE_URL": url}
        with contextlib.chdir(ROOT):
            result = runner.invoke(main, ["--config", str(config), *args], env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Ran(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture(scope="session")
def bundled_store(tmp_path_factory) -> Store:
    """The bundled data as one snapshot, refreshed as of 2024-03-01 (read only: tests must not write to it)."""
    store = Store.open(tmp_path_factory.mktemp("bundled") / "s.db")
    taken = datetime(2026, 11, 24, tzinfo=UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """For the crash tests: the stores a crash must fall back to (see `tests.crash_fixtures.make_stores`)."""
    from tests.crash_fixtures import make_stores

    return make_stores(tmp_path_factory)


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a running PostgreSQL server: SALESINTEL_TEST_POSTGRES_URL's (CI starts one), or one started here
    for this session. Without either, PostgreSQL tests are skipped, unless SALESINTEL_REQUIRE_POSTGRES is set (CI
    sets it: there a missing server fails the run)."""
    import os
    import shutil
    import tempfile

    from tests import postgres_server as server

    url = os.environ.get(server.ENV_URL)
    if url:
        yield url
        return
    if server.binaries() is None:
        if os.environ.get("SALESINTEL_REQUIRE_POSTGRES"):
            pytest.fail("no PostgreSQL server and no binaries to start one")
        pytest.skip("no PostgreSQL: set SALESINTEL_TEST_POSTGRES_URL or install Debian's postgresql package")
    folder = Path(tempfile.mkdtemp(prefix="sipg", dir="/tmp"))  # short: a Unix socket path has a length limit
    try:
        yield server.start(folder)
    finally:
        server.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def store_target(request, tmp_path) -> str:
    """A new store's location, once on SQLite and once on PostgreSQL."""
    return new_store_target(request, tmp_path, request.param)


@pytest.fixture
def postgres_url(request, tmp_path) -> str:
    """A new store's location on PostgreSQL only."""
    return new_store_target(request, tmp_path, "postgresql")

"""The wheel as a user installs it: one `salesintel` namespace, its defaults and templates inside, working from an
empty folder with nothing of this repository on the path."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.engine_fixtures import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel built from this checkout installed in it (its dependencies are
    those of the test environment, reached through a path file, so the test needs no network beyond the build)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp / "dist").glob("salesintel-*.whl")
    # Without its own pip (ensurepip takes seconds): this environment's pip installs into it (`--python`).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    python = tmp / "venv/bin/python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return tmp / "venv/bin"


def run(bin_dir: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / "salesintel"), *args], capture_output=True, text=True, cwd=folder, env={"PATH": str(bin_dir)}
    )


def test_the_installed_wheel_runs_the_main_job_from_an_empty_folder(installed, tmp_path):
    assert run(installed, tmp_path, "ingest").returncode == 2  # a file, or --sample
    ingested = run(installed, tmp_path, "ingest", "--sample")  # the sample shipped inside the package
    assert ingested.returncode == 0, ingested.stderr
    assert "using the built-in defaults" in ingested.stderr and "read 5000, loaded 5000" in ingested.stdout
    assert (tmp_path / "var/salesintel.db").exists()  # the defaults' store, in the current folder
    refreshed = run(installed, tmp_path, "refresh", "--as-of", "2024-03-01")
    assert refreshed.returncode == 0 and "4003 closed deals, 702 open" in refreshed.stdout, refreshed.stderr
    daily = run(installed, tmp_path, "report", "daily", "--as-of", "2024-03-01")
    assert daily.returncode == 0 and "Daily pipeline summary" in daily.stdout, daily.stderr
    risk = run(installed, tmp_path, "risk", "D00005", "--as-of", "2024-03-01")
    assert risk.returncode == 0 and "D00005" in risk.stdout, risk.stderr


def test_init_writes_the_defaults_to_edit_and_commands_then_read_them(installed, tmp_path):
    written = run(installed, tmp_path, "init")
    assert written.returncode == 0, written.stderr
    config = tmp_path / "config.yaml"
    assert config.read_text() == (ROOT / "bot/default_config.yaml").read_text()
    assert run(installed, tmp_path, "init").returncode == 1  # never overwrites without --force
    config.write_text(config.read_text().replace("path: var/salesintel.db", "path: mine.db"))
    ingested = run(installed, tmp_path, "ingest", str(ROOT / "data/skygeni_sales_data.csv"))
    assert ingested.returncode == 0 and "built-in defaults" not in ingested.stderr, ingested.stderr
    assert (tmp_path / "mine.db").exists()


def test_only_the_salesintel_namespace_is_installed(installed, tmp_path):
    probe = (
        "import importlib.util, salesintel.engine.refresh, salesintel.templates; "
        "print(salesintel.engine.refresh.__file__); "
        "print([n for n in ('engine', 'alerts', 'bot', 'templates') if importlib.util.find_spec(n)])"
    )
    found = subprocess.run([installed / "python", "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    location, collisions = found.stdout.splitlines()
    assert "/venv/lib/" in location and "site-packages/salesintel/engine/refresh.py" in location
    assert collisions == "[]"


class _OldLayoutModel:
    """Stands for a model pickled when salesintel's modules were top-level (`engine.model.TrainedModel`)."""


def test_a_model_pickled_under_module_paths_that_are_gone_is_retrained_with_a_warning(tmp_path, monkeypatch, caplog):
    import pickle
    import types
    from datetime import UTC, date, datetime

    from salesintel.engine.ingest import read_snapshot
    from salesintel.engine.refresh import EngineSettings, refresh
    from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
    from salesintel.engine.store import Store

    taken = datetime(2024, 3, 1, 6, tzinfo=UTC)
    store = Store.open(tmp_path / "s.db")
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    settings = EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings())
    refresh(store, settings, date(2024, 3, 1), taken)
    gone = types.ModuleType("engine_before_the_namespace")
    _OldLayoutModel.__module__ = gone.__name__
    gone._OldLayoutModel = _OldLayoutModel
    monkeypatch.setitem(sys.modules, gone.__name__, gone)
    old_pickle = pickle.dumps(_OldLayoutModel())
    monkeypatch.delitem(sys.modules, gone.__name__)
    with store.transaction():
        store.db.execute("UPDATE models SET pipeline = ?", [old_pickle])
    with caplog.at_level("WARNING"):
        refresh(store, settings, date(2024, 3, 1), taken)
    assert len(store.models()) == 2  # a new version, trained instead of failing
    assert "was saved by an older salesintel and cannot be loaded: training a new version" in caplog.text


class _Booby:
    """A pickle that runs code when loaded: it would create a file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_model_blob_that_would_run_code_is_never_loaded_and_the_model_is_retrained(tmp_path, caplog):
    import pickle
    from datetime import UTC, date, datetime

    from salesintel.engine.ingest import read_snapshot
    from salesintel.engine.refresh import EngineSettings, refresh
    from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
    from salesintel.engine.store import Store

    taken = datetime(2024, 3, 1, 6, tzinfo=UTC)
    store = Store.open(tmp_path / "s.db")
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    settings = EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings())
    refresh(store, settings, date(2024, 3, 1), taken)
    assert store.model(1).pipeline.startswith(b"skops1:"), "models are stored with skops"
    marker = tmp_path / "ran"
    with store.transaction():
        store.db.execute("UPDATE models SET pipeline = ?", [pickle.dumps(_Booby(str(marker)))])
    with caplog.at_level("WARNING"):
        refresh(store, settings, date(2024, 3, 1), taken)
    assert not marker.exists(), "the pickle was never loaded"
    assert len(store.models()) == 2 and "pickles are never loaded" in caplog.text

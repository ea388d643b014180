"""The `salesintel` entry point ends a finished command without a last collection, yet loses nothing: its output,
its exit status, its exit handlers, and the store file holding everything it wrote."""

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import atexit, sys
    from salesintel.bot import cli, launch

    class Witness:
        def __del__(self):
            print("collected")

    witness = Witness()
    witness.itself = witness  # a cycle: once the module is torn down, freed only by the collector

    @cli.main.command("probe")
    def probe():
        atexit.register(lambda: print("handler ran"))  # registered during the command, as a library would
        print("x" * 200_000)  # more than a pipe holds: must all arrive
        {ending}

    sys.argv = ["salesintel", "probe"]
    launch.main()
""")


def run_probe(ending: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(ending=ending)], capture_output=True, text=True, cwd=ROOT)


def test_a_finished_command_skips_the_last_collection_but_keeps_its_output_status_and_handlers():
    result = run_probe("sys.exit(3)")
    assert result.returncode == 3, result.stderr
    assert result.stdout.count("x") == 200_000
    assert "handler ran" in result.stdout
    assert "collected" not in result.stdout


def test_a_click_error_keeps_its_exit_status_and_message():
    result = run_probe("raise cli.click.ClickException('the probe failed')")
    assert result.returncode == 1 and "Error: the probe failed" in result.stderr
    assert "handler ran" in result.stdout


def test_an_exception_escaping_the_command_ends_the_usual_way():
    result = run_probe("raise RuntimeError('a bug')")
    assert result.returncode == 1 and "RuntimeError: a bug" in result.stderr
    assert "handler ran" in result.stdout and "collected" in result.stdout


def test_the_store_file_alone_holds_what_a_command_wrote(tmp_path):
    env = {"SALESINTEL_DB": str(tmp_path / "s.db"), "PATH": ""}
    command = [sys.executable, "-m", "salesintel.bot", "--config", str(ROOT / "config.yaml")]
    ingested = subprocess.run(
        [*command, "ingest", "data/skygeni_sales_data.csv"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert ingested.returncode == 0, ingested.stderr
    assert not (tmp_path / "s.db-wal").exists()  # the write-ahead log was checkpointed and removed at close
    shutil.copy(tmp_path / "s.db", tmp_path / "copy.db")  # the file alone, as a naive backup would take it
    assert sqlite3.connect(tmp_path / "copy.db").execute("SELECT count(*) FROM snapshots").fetchone() == (1,)

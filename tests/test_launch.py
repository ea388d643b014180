"""The `salesintel` entry point ends a finished command at once, yet nothing the command wrote or registered is lost."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.launch import exit_status

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import atexit, sys
    from bot import cli, launch

    class Witness:
        def __del__(self):
            print("torn down")

    witness = Witness()  # freed only if the interpreter is torn down

    @cli.main.command("probe")
    def probe():
        atexit.register(lambda: print("handler ran"))  # registered during the command, as a library would
        print("x" * 200_000)  # more than a pipe holds: must all arrive
        {ending}

    sys.argv = ["salesintel", "probe"]
    launch.main()
""")


def run_probe(ending: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(ending=ending)], capture_output=True, text=True,
                          cwd=ROOT)  # fmt: skip


def test_a_finished_command_ends_at_once_after_its_output_and_exit_handlers():
    result = run_probe("sys.exit(3)")
    assert result.returncode == 3, result.stderr
    assert result.stdout.count("x") == 200_000
    assert result.stdout.rstrip().endswith("handler ran")
    assert "torn down" not in result.stdout  # the interpreter was not torn down


def test_a_click_error_keeps_its_exit_status_and_message():
    result = run_probe("raise cli.click.ClickException('the probe failed')")
    assert result.returncode == 1 and "Error: the probe failed" in result.stderr
    assert "handler ran" in result.stdout


def test_an_exception_escaping_the_command_ends_the_usual_way():
    result = run_probe("raise RuntimeError('a bug')")
    assert result.returncode == 1 and "RuntimeError: a bug" in result.stderr
    assert "handler ran" in result.stdout


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (2, 2), ("a message", 1)])
def test_exit_status_follows_sys_exit(code, status):
    assert exit_status(code) == status

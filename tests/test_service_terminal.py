"""Terminal mode: no Slack credentials, commands typed on stdin go through the same Bolt handlers."""

import os
import subprocess
import sys
from datetime import UTC, date, datetime

from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests.engine_fixtures import ROOT


def terminal_environment(tmp_path) -> dict:
    """The bundled data refreshed as of 2024-03-01 in `tmp_path/s.db`, and an environment without Slack credentials
    pointing at it."""
    store = Store.open(tmp_path / "s.db")
    taken = datetime.now(UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["SALESINTEL_DB"] = str(tmp_path / "s.db")
    return env


def test_commands_typed_on_stdin_are_answered_and_end_of_input_stops_cleanly(tmp_path):
    env = terminal_environment(tmp_path)
    typed = "/deal-risk D00005\n/winrate\n/deal-risk D99999\n/nope\n"
    result = subprocess.run(
        [sys.executable, "-m", "salesintel.bot", "--config", str(ROOT / "config.yaml"), "run", "--as-of", "2024-03-01"],
        input=typed,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "salesintel (terminal mode)" in out
    assert "*D00005* — risk *55%* · P(win) 45%" in out
    assert "No segment's win rate differs significantly from the rest" in out
    assert "no deal D99999 in the snapshot of" in out
    assert "unknown command /nope" in out
    assert '"event": "stopped"' in result.stderr


def test_terminal_mode_with_a_port_serves_the_dashboard_behind_a_printed_link(tmp_path):
    import http.cookiejar
    import re
    import urllib.parse
    import urllib.request

    from tests.test_service_http import free_port

    env = terminal_environment(tmp_path)
    port = free_port()
    args = ["--config", str(ROOT / "config.yaml"), "run", "--as-of", "2024-03-01", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "salesintel.bot", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        process.stdin.write("/salesintel dashboard\n")
        process.stdin.flush()
        link = None
        while link is None:
            line = process.stdout.readline()
            assert line, "the service ended before printing a link"
            found = re.search(r"\[Open the dashboard: (http://localhost:\d+/dashboard/login\?token=\S+)\]", line)
            link = found.group(1) if found else None
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        link = link.replace("localhost", "127.0.0.1")
        with browser.open(link, timeout=30) as page:
            assert 'id="sign-in"' in page.read().decode(), "the link's page: whom it signs in, and a button"
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]
        form = urllib.parse.urlencode({"token": token}).encode()
        with browser.open(link.split("?")[0], data=form, timeout=30) as page:  # the button's POST
            html = page.read().decode()
        assert page.url.endswith("/dashboard") and "<title>Pipeline · salesintel</title>" in html
        assert "UTERMINAL" in html, "the terminal's user, who sees everything"
    finally:
        process.stdin.close()
        assert process.wait(timeout=30) == 0

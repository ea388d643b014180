"""Socket Mode: with SLACK_APP_TOKEN the service takes Slack's requests over a WebSocket and acks them there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime
from urllib.parse import parse_qsl

from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests import slack_requests as slack
from tests.engine_fixtures import ROOT
from tests.slack_standin import SlackStandIn
from tests.socket_standin import SocketModeStandIn
from tests.test_service_http import free_port


def test_a_slash_command_over_socket_mode_is_answered_on_the_socket(tmp_path):
    store = Store.open(tmp_path / "s.db")
    taken = datetime.now(UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    (tmp_path / "config.yaml").write_text("bot: {executives: [UEXEC]}\n")
    sockets = SocketModeStandIn().start()
    web = SlackStandIn(socket_url=sockets.url).start()
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-socket",
        "SLACK_APP_TOKEN": "xapp-1-A0001-socket",
        "SLACK_API_URL": web.url,
        "SALESINTEL_DB": str(tmp_path / "s.db"),
    }
    env.pop("SLACK_SIGNING_SECRET", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "salesintel.bot",
            "--config",
            str(tmp_path / "config.yaml"),
            "run",
            "--port",
            str(port),
            "--as-of",
            "2024-03-01",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert sockets.connected.wait(timeout=30), process.stderr.read1().decode() if process.poll() is not None else ""
        assert any(c.method == "apps.connections.open" and c.token == "xapp-1-A0001-socket" for c in web.calls)
        payload = dict(parse_qsl(slack.slash_command("/deal-risk", "D00005", "UEXEC")))
        sockets.push(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "payload": payload,
                "accepts_response_payload": True,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        deadline = time.monotonic() + 10
        while not [a for a in sockets.acks if a.get("envelope_id") == "env-1"]:
            assert time.monotonic() < deadline, sockets.acks
            time.sleep(0.05)
        ack = next(a for a in sockets.acks if a.get("envelope_id") == "env-1")
        assert ack["payload"]["response_type"] == "ephemeral"
        assert "*D00005* — risk *55%*" in json.dumps(ack["payload"]["blocks"], ensure_ascii=False)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert json.loads(response.read())["scheduler"]["running"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        sockets.stop()
        web.stop()

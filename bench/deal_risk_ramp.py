"""Benchmark: an open-loop ramp of signed `/deal-risk` requests against `salesintel run` and a bare Bolt app.

Both run in this one invocation, on the same machine, each in its own process served by waitress: `salesintel run`
(HTTP mode, signature verification and the request guard on) on a store with the bundled data refreshed as of
2024-03-01, and `bench/bare_bolt_app.py` (the same request path with a fixed answer: the floor). For each rate
of the ramp, requests are scheduled at exact times for `--seconds` and sent by a pool of client threads; a
request's latency is counted from its scheduled time (so a backed-up client cannot hide a slow server: no
coordinated omission) to the full response. Prints per step and server: achieved rate, p50, p99, errors (non-200 or
a wrong answer, and connection resets), and the p99 ratio to the bare app.

    .venv/bin/python bench/deal_risk_ramp.py [--rates 25,50,100,200,300,400] [--seconds 10]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.deal_risk_latency import SECRET, free_port, prepare  # noqa: E402
from tests import slack_requests as slack  # noqa: E402
from tests.slack_standin import SlackStandIn  # noqa: E402


def wait_ready(port: int, path: str) -> None:
    for _ in range(600):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} never answered")


_local = threading.local()


def send(port: int, deal: str, scheduled: float) -> tuple[float, bool]:
    """One signed request on this client thread's keep-alive connection; (latency ms from schedule, ok)."""
    body = slack.slash_command("/deal-risk", deal, "UBENCH")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack.signature(SECRET, timestamp, body),
    }
    try:
        connection = getattr(_local, "connections", {}).get(port)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            _local.connections = {**getattr(_local, "connections", {}), port: connection}
        connection.request("POST", "/slack/events", body.encode(), headers)
        response = connection.getresponse()
        text = response.read().decode()
        ok = response.status == 200 and deal in text
    except (OSError, http.client.HTTPException):
        _local.connections.pop(port, None)
        ok = False
    return (time.perf_counter() - scheduled) * 1000, ok


def step(port: int, deals: list[str], rate: float, seconds: float, rng: random.Random) -> dict:
    count = int(rate * seconds)
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        start = time.perf_counter() + 0.05
        futures = []
        for i in range(count):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, port, rng.choice(deals), scheduled))
        results = [future.result() for future in futures]
        took = time.perf_counter() - start
    latencies = sorted(ms for ms, ok in results if ok)
    errors = sum(1 for _, ok in results if not ok)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0.0] * 99
    return {"rate": count / took, "p50": quantiles[49], "p99": quantiles[98], "errors": errors, "n": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="25,50,100,200,300,400")
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()
    rates = [float(r) for r in options.rates.split(",")]
    standin = SlackStandIn().start()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        deals = prepare(folder)
        (folder / "config.yaml").write_text("bot: {visibility: everyone, executives: [UBENCH]}\n")
        ours, bare = free_port(), free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": standin.url,
            "SALESINTEL_DB": str(folder / "store.db"),
        }
        args = ["--config", str(folder / "config.yaml"), "run", "--port", str(ours), "--as-of", "2024-03-01"]
        servers = [
            subprocess.Popen(
                [sys.executable, "-m", "salesintel.bot", *args], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
            ),
            subprocess.Popen([sys.executable, str(ROOT / "bench/bare_bolt_app.py"), str(bare), SECRET], cwd=ROOT),
        ]
        try:
            wait_ready(ours, "/healthz")
            wait_ready(bare, "/slack/events")
            rng = random.Random(1)
            step(ours, deals, 50, 2, rng)  # warm-up
            step(bare, deals, 50, 2, rng)
            print(f"/deal-risk, signed, open loop, {options.seconds:g} s per step; {len(deals)} open deals")
            print(f"{'rate/s':>7} | {'salesintel p50 p99 err':>26} | {'bare Bolt p50 p99 err':>26} | p99 ratio")
            for rate in rates:
                a = step(ours, deals, rate, options.seconds, rng)
                b = step(bare, deals, rate, options.seconds, rng)
                print(
                    f"{rate:7.0f} | {a['p50']:7.1f} {a['p99']:8.1f} ms {a['errors']:5d} | "
                    f"{b['p50']:7.1f} {b['p99']:8.1f} ms {b['errors']:5d} | {a['p99'] / max(b['p99'], 1e-9):.2f}",
                    flush=True,
                )
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
            for server in servers:
                server.wait(timeout=30)
            standin.stop()


if __name__ == "__main__":
    main()

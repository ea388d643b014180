"""Benchmark: `/deal-risk` latency through the real HTTP endpoint of `salesintel run`, at a fixed request rate.

Starts `salesintel run` (HTTP mode, signature verification on) on a free port against a store holding the bundled
data refreshed as of 2024-03-01, with a local Slack Web API stand-in for its outgoing calls. Then sends signed
slash-command requests open-loop at `--rate` per second for `--seconds` (each request fires at its scheduled time
in its own thread, so a slow answer cannot slow the sender down), over random open deals. Latency is measured at
the client, from just before the request is sent to the full response read. Prints p50/p90/p99/max and the ratio
of p99 to the 50 ms budget of issue 5.

    .venv/bin/python bench/deal_risk_latency.py [--rate 50] [--seconds 20] [--warmup 50]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from salesintel.engine.ingest import read_snapshot  # noqa: E402
from salesintel.engine.refresh import EngineSettings, refresh  # noqa: E402
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings  # noqa: E402
from salesintel.engine.store import Store  # noqa: E402
from tests import slack_requests as slack  # noqa: E402
from tests.slack_standin import SlackStandIn  # noqa: E402

SECRET = "bench-signing-secret"
BUDGET_MS = 50.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(folder: Path) -> list[str]:
    store = Store.open(folder / "store.db")
    taken = datetime.now(UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    result = refresh(
        store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken
    )
    return [s.deal_id for s in store.scores(result.id)]


def one_request(url: str, deal_id: str, results: list, errors: list) -> None:
    body = slack.slash_command("/deal-risk", deal_id, "UBENCH")
    start = time.perf_counter()
    status, text = slack.send(url, body, "application/x-www-form-urlencoded", SECRET)
    elapsed = (time.perf_counter() - start) * 1000
    if status == 200 and deal_id in text:
        results.append(elapsed)
    else:
        errors.append((status, text[:200]))


def load(url: str, deals: list[str], rate: float, count: int, rng: random.Random) -> tuple[list[float], list, float]:
    results, errors, threads = [], [], []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one_request, args=(url, rng.choice(deals), results, errors))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return results, errors, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=int, default=50)
    options = parser.parse_args()
    standin = SlackStandIn().start()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        deals = prepare(folder)
        (folder / "config.yaml").write_text("bot: {visibility: everyone, executives: [UBENCH]}\n")
        port = free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": standin.url,
            "SALESINTEL_DB": str(folder / "store.db"),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "salesintel.bot",
                "--config",
                str(folder / "config.yaml"),
                "run",
                "--port",
                str(port),
                "--as-of",
                "2024-03-01",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        url = base + "/slack/events"
        rng = random.Random(1)
        try:
            load(url, deals, options.rate, options.warmup, rng)
            count = int(options.rate * options.seconds)
            results, errors, took = load(url, deals, options.rate, count, rng)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            standin.stop()
    results.sort()
    p50, p90, p99 = percentile(results, 50), percentile(results, 90), percentile(results, 99)
    print(
        f"/deal-risk over HTTP, signed, {len(results)} ok + {len(errors)} errors in {took:.1f} s "
        f"(target {options.rate:g}/s, achieved {count / took:.1f}/s), {len(deals)} open deals"
    )
    print(
        f"  latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {results[-1]:.1f}"
        f"  mean {statistics.mean(results):.1f}"
    )
    print(f"  p99 / {BUDGET_MS:.0f} ms budget = {p99 / BUDGET_MS:.2f}")
    if errors:
        print(f"  first error: {errors[0]}")


if __name__ == "__main__":
    main()

"""Benchmark: the same work on a SQLite store and on a PostgreSQL store, in one run on one machine.

For each backend: writing a snapshot of `--deals` synthetic deals (the store's part of `salesintel ingest`; the CSV
is parsed once, before), a refresh as of the data's last day (the first trains the model, the later ones reuse it,
as the scheduled refresh does), and `/deal-risk` answered through the real HTTP endpoint of `salesintel run` at
`--rate` requests a second (signed; latency from send to full response, at the client). Steps alternate between
the backends, `--repeats` times, and medians are printed with PostgreSQL's ratio to SQLite.

PostgreSQL is the server at `--postgres URL`, or a throwaway local cluster started here (Debian's binaries; no
fsync, Unix socket: the numbers are the store layer's, not a disk's).

    .venv/bin/python bench/store_backends.py [--deals 50000] [--repeats 3] [--rate 50] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.deal_risk_latency import SECRET, free_port, load, percentile  # noqa: E402
from salesintel.engine.ingest import read_snapshot  # noqa: E402
from salesintel.engine.refresh import EngineSettings, refresh  # noqa: E402
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings  # noqa: E402
from salesintel.engine.store import Store  # noqa: E402
from salesintel.engine.synth import SynthSpec, generate  # noqa: E402
from tests import postgres_server  # noqa: E402
from tests.slack_standin import SlackStandIn  # noqa: E402

ENGINE = EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings())


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def serve(target: str, folder: Path, standin: SlackStandIn, as_of: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": standin.url,
        "OMP_NUM_THREADS": "1",
    }
    env.pop("SALESINTEL_DB", None)
    env.pop("SALESINTEL_DATABASE_URL", None)
    env["SALESINTEL_DATABASE_URL" if "://" in target else "SALESINTEL_DB"] = target
    args = ["--config", str(folder / "config.yaml"), "run", "--port", str(port), "--as-of", as_of]
    process = subprocess.Popen(
        [sys.executable, "-m", "salesintel.bot", *args], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return process, base + "/slack/events"
        except OSError as error:
            if hasattr(error, "code"):  # answered (503 while degraded): listening
                return process, base + "/slack/events"
            time.sleep(0.1)
    raise RuntimeError(f"salesintel run on {target} never answered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--postgres", default=os.environ.get(postgres_server.ENV_URL))
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="salesintel-bench-"))
    cluster = None
    if not options.postgres:
        cluster = Path(tempfile.mkdtemp(prefix="sipg", dir="/tmp"))
        options.postgres = postgres_server.start(cluster)
    standin = SlackStandIn().start()
    try:
        spec = SynthSpec(deals=options.deals, seed=1)
        generate(spec).crm.to_csv(folder / "crm.csv", index=False)
        parsed = read_snapshot(folder / "crm.csv", IngestSettings())
        as_of = spec.start + timedelta(days=spec.days - 1)
        url, schema = postgres_server.fresh_schema_url(options.postgres)
        targets = {"sqlite": str(folder / "s.db"), "postgresql": url}
        stores = {name: Store.open(target) for name, target in targets.items()}
        results: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
        now = datetime.now(UTC)
        print(f"{options.deals:,} deals, {len(parsed.deals):,} valid; as of {as_of}; repeats {options.repeats}")
        for name, store in stores.items():
            took, _ = timed(lambda store=store: store.save_snapshot(parsed, now, now))
            results[name]["snapshot write"] = [took]
            took, _ = timed(lambda store=store: refresh(store, ENGINE, as_of, now))
            results[name]["refresh (trains)"] = [took]
        for _ in range(options.repeats):
            for name, store in stores.items():
                took, _ = timed(lambda store=store: refresh(store, ENGINE, as_of, now))
                results[name].setdefault("refresh", []).append(took)
        open_deals = [s.deal_id for s in stores["sqlite"].scores(stores["sqlite"].latest_refresh().id)]
        for store in stores.values():
            store.close()
        (folder / "config.yaml").write_text("bot: {visibility: everyone, executives: [UBENCH]}\n")
        servers = {name: serve(target, folder, standin, as_of.isoformat()) for name, target in targets.items()}
        rng = random.Random(1)
        try:
            for _ in range(options.repeats):
                for name, (_, events) in servers.items():
                    load(events, open_deals, options.rate, 25, rng)  # warm up the process and its connections
                    answered, errors, _ = load(
                        events, open_deals, options.rate, int(options.rate * options.seconds), rng
                    )
                    answered.sort()
                    results[name].setdefault("/deal-risk p50 ms", []).append(percentile(answered, 50))
                    results[name].setdefault("/deal-risk p99 ms", []).append(percentile(answered, 99))
                    results[name].setdefault("/deal-risk errors", []).append(len(errors))
        finally:
            for process, _ in servers.values():
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        postgres_server.drop_schema(options.postgres, schema)
    finally:
        standin.stop()
        if cluster is not None:
            postgres_server.stop(cluster)
            shutil.rmtree(cluster, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'step':<22}{'SQLite':>12}{'PostgreSQL':>12}{'PG / SQLite':>13}   (medians; seconds unless ms)")
    for step in results["sqlite"]:
        lite, pg = statistics.median(results["sqlite"][step]), statistics.median(results["postgresql"][step])
        ratio = f"{pg / lite:.2f}" if lite else "-"
        print(f"{step:<22}{lite:>12.3f}{pg:>12.3f}{ratio:>13}")


if __name__ == "__main__":
    main()

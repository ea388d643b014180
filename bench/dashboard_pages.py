"""Benchmark: web dashboard pages through the real HTTP server of `salesintel run`, for a rep and for an executive.

Plants a synthetic export (`--deals`, default 20,000; `engine/synth.py`), ingests and refreshes it, and starts
`salesintel run` (HTTP mode, waitress) with a Slack Web API stand-in. Signs in the way a user does: a signed
`/salesintel dashboard` command, then the single-use link it answers with (the session cookie kept); the link's
time, to the end of the pipeline page it lands on, is printed as "sign-in": that first view draws the viewer's
charts (alt text and images), which later views take from the cache. Each page is then fetched once ("first") and
`--repeats` times more one after another, timed at the client from the request to the last byte. The floor, in
the same run: a bare WSGI app on the same waitress server answering a fixed body as large as the biggest page.
Prints each page's median and p90 and the ratio of its median to the floor's.

    .venv/bin/python bench/dashboard_pages.py [--deals 20000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from waitress.server import create_server  # noqa: E402

from salesintel.engine.ingest import read_snapshot  # noqa: E402
from salesintel.engine.refresh import EngineSettings, refresh  # noqa: E402
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings  # noqa: E402
from salesintel.engine.store import Store  # noqa: E402
from salesintel.engine.synth import SynthSpec, generate  # noqa: E402
from tests import slack_requests as slack  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.slack_standin import SlackStandIn  # noqa: E402

SECRET = "bench-signing-secret"
PEOPLE = {"rep_1": {"slack": "U001", "manager": "mgr_a"}, "mgr_a": {"slack": "U901"}}
PAGES = ("/dashboard", "/dashboard/deals", "/dashboard/winrates", "/dashboard/model", "/dashboard/alerts")


def prepare(folder: Path, deals: int, port: int) -> tuple[str, dict[str, str]]:
    """The store and config; returns the as-of date and, per viewer, one deal id they may open."""
    data = generate(SynthSpec(deals=deals, seed=7))
    csv = folder / "crm.csv"
    data.crm.to_csv(csv, index=False)
    store = Store.open(folder / "store.db")
    taken = datetime.now(UTC)
    store.save_snapshot(read_snapshot(csv, IngestSettings()), taken, taken)
    as_of = data.spec.snapshot_date
    result = refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), as_of, taken)
    scores = sorted(store.scores(result.id), key=lambda s: -s.risk)
    store.close()
    config = {
        "alerts": {"routing": {"users": PEOPLE}},
        "bot": {
            "visibility": "owner_and_managers",
            "executives": ["UEXEC"],
            "dashboard": {"public_url": f"http://127.0.0.1:{port}"},
        },
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rep_deal = next(s.deal_id for s in scores if s.sales_rep_id == "rep_1")
    return as_of.isoformat(), {"rep_1 (U001)": rep_deal, "executive (UEXEC)": scores[0].deal_id}


def signed_in(base: str, slack_id: str) -> tuple[urllib.request.OpenerDirector, float]:
    """An opener holding the session cookie of `slack_id`, signed in through the link Slack would show them, and the
    milliseconds from opening the link to the end of the page it lands on."""
    status, body = slack.send(
        base + "/slack/events",
        slack.slash_command("/salesintel", "dashboard", slack_id),
        "application/x-www-form-urlencoded",
        SECRET,
    )
    assert status == 200, body
    link = json.loads(body)["blocks"][0]["accessory"]["url"]
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    start = time.perf_counter()
    with opener.open(link, timeout=60) as page:  # whom it signs in, and the "Sign in" button
        assert b'id="sign-in"' in page.read()
    form = urllib.parse.urlencode(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))).encode()
    with opener.open(link.split("?")[0], data=form, timeout=60) as landed:  # the button's POST
        landed.read()
        assert landed.status == 200 and landed.url.endswith("/dashboard"), landed.url
    return opener, (time.perf_counter() - start) * 1000


def timed(opener, url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with opener.open(url, timeout=60) as response:
        size = len(response.read())
        assert response.status == 200, url
    return (time.perf_counter() - start) * 1000, size


def measure(opener, url: str, repeats: int) -> dict:
    first, size = timed(opener, url)
    times = sorted(timed(opener, url)[0] for _ in range(repeats))
    return {
        "first": first,
        "median": statistics.median(times),
        "p90": times[min(len(times) - 1, int(0.9 * len(times)))],
        "bytes": size,
    }


def floor_server(size: int) -> tuple[str, object]:
    """A bare WSGI app on waitress (as `salesintel run` serves) answering a fixed HTML body of `size` bytes."""
    body = b"<!doctype html><title>floor</title>" + b"x" * max(0, size - 35)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{port}/", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=30)
    options = parser.parse_args()
    standin = SlackStandIn().start()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        port = free_port()
        started = time.perf_counter()
        as_of, deal_of = prepare(folder, options.deals, port)
        print(
            f"{options.deals:,} planted deals ingested and refreshed as of {as_of} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": standin.url,
            "SALESINTEL_DB": str(folder / "store.db"),
        }
        args = ["--config", str(folder / "config.yaml"), "run", "--port", str(port), "--as-of", as_of]
        process = subprocess.Popen(
            [sys.executable, "-m", "salesintel.bot", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        results: dict[str, dict[str, dict]] = {}
        sign_ins: dict[str, float] = {}
        try:
            for _ in range(600):
                try:
                    health = json.loads(urllib.request.urlopen(base + "/healthz", timeout=1).read())
                    if health.get("start_up") == "done":
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            for viewer, slack_id in (("rep_1 (U001)", "U001"), ("executive (UEXEC)", "UEXEC")):
                opener, sign_ins[viewer] = signed_in(base, slack_id)
                pages = [*PAGES, f"/dashboard/deals/{deal_of[viewer]}", "/dashboard/charts/risk.png"]
                results[viewer] = {page: measure(opener, base + page, options.repeats) for page in pages}
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            standin.stop()
    largest = max(r["bytes"] for pages in results.values() for r in pages.values())
    floor_url, server = floor_server(largest)
    plain = urllib.request.build_opener()
    floor = measure(plain, floor_url, options.repeats)
    server.close()
    print(
        f"floor: bare WSGI app on waitress, fixed {largest:,}-byte body: median {floor['median']:.2f} ms, "
        f"p90 {floor['p90']:.2f} ms ({options.repeats} sequential requests)"
    )
    for viewer, pages in results.items():
        print(
            f"\n{viewer}: sign-in (link to the end of the pipeline page, charts drawn) {sign_ins[viewer]:.1f} ms; "
            f"then {options.repeats} sequential requests per page after its first view"
        )
        print(f"{'page':44} {'first':>9} {'median':>9} {'p90':>9} {'bytes':>9} {'×floor':>7}")
        for page, r in pages.items():
            name = page if len(page) <= 44 else page[:41] + "..."
            print(
                f"{name:44} {r['first']:8.1f}ms {r['median']:8.1f}ms {r['p90']:8.1f}ms {r['bytes']:9,} "
                f"{r['median'] / floor['median']:6.1f}×"
            )


if __name__ == "__main__":
    main()

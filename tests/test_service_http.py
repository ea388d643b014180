"""`salesintel run` end to end: a subprocess on a free port, Slack's real request shapes signed as Slack signs
them, and a local Slack Web API stand-in that records what the bot sent back."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from salesintel.alerts.ledger import AlertLedger
from salesintel.alerts.outbox import Outbox
from salesintel.alerts.render import Message
from salesintel.engine.ingest import read_snapshot
from salesintel.engine.refresh import EngineSettings, refresh
from salesintel.engine.settings import AnomalySettings, IngestSettings, MetricsSettings, ModelSettings
from salesintel.engine.store import Store
from tests import slack_requests as slack
from tests.engine_fixtures import ROOT
from tests.ports import free_port
from tests.slack_standin import SlackStandIn

SECRET, TOKEN = "8f742231b10e8888abcd99yyyzzz85a5", "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
CONFIG = {
    "timezone": "America/New_York",
    "alerts": {
        "realtime": {"min_amount": 45000, "min_risk": 0.5},
        "control_share": 0.0,
        "routing": {
            "users": {
                "rep_2": {"slack": "U002", "manager": "mgr_a"},
                "rep_3": {"slack": "U003", "manager": "mgr_b"},
                "mgr_a": {"slack": "U901"},
                "mgr_b": {"slack": "U902"},
            }
        },
    },
    "bot": {"visibility": "owner_and_managers", "executives": ["UEXEC"]},
}


def start_http_service(tmp: Path, port: int, as_of: str, slack_url: str, ready: str | None = None):
    """`salesintel run` in HTTP mode on `port` with `tmp/config.yaml` and `tmp/store.db`, talking to the Slack
    stand-in at `slack_url`; returns once /healthz answers (and, with `ready`, once start-up reached it):
    (process, base URL, log path)."""
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack_url,
        "SALESINTEL_DB": str(tmp / "store.db"),
    }
    log_path = tmp / "service.log"
    args = ["--config", str(tmp / "config.yaml"), "run", "--port", str(port), "--as-of", as_of]
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("w")
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            health = json.loads(urllib.request.urlopen(base + "/healthz", timeout=1).read())
            assert health["process"] == process.pid, f"another server answers on {base}: {health}"
            if ready is None or health["start_up"] == ready:
                return process, base, log_path
        except OSError:
            assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("service")
    (tmp / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    store = Store.open(tmp / "store.db")
    taken = datetime.now(UTC)
    store.save_snapshot(read_snapshot(ROOT / "data/skygeni_sales_data.csv", IngestSettings()), taken, taken)
    with store.db.conn:
        store.db.execute("UPDATE deals SET deal_name = '<!channel> & friends' WHERE deal_id = 'D00005'")
    refresh(store, EngineSettings(MetricsSettings(), ModelSettings(), AnomalySettings()), date(2024, 3, 1), taken)
    with store.db.conn:  # the bundled data has no skill, so its risk rule is silent: make it speak at 50%
        store.db.execute(
            "UPDATE refreshes SET metrics = json_set(metrics, '$.risk_rule.active', json('true'),"
            " '$.risk_rule.threshold', 0.5)"
        )
        alert = AlertLedger(store).open_episode(
            "high_value_at_risk", "D00005", 0.8, False, ["user:rep_2", "user:mgr_a"], {}, taken
        )
    standin = SlackStandIn().start()
    process, base, log_path = start_http_service(tmp, free_port(), "2024-03-01", standin.url)
    yield {
        "base": base,
        "standin": standin,
        "process": process,
        "log": log_path,
        "alert": alert.id,
        "store": tmp / "store.db",
    }
    if process.poll() is None:
        process.kill()
    standin.stop()


def command(service, name: str, text: str, user: str) -> tuple[int, dict]:
    status, body = slack.send(
        service["base"] + "/slack/events",
        slack.slash_command(name, text, user),
        "application/x-www-form-urlencoded",
        SECRET,
    )
    return status, json.loads(body) if body.startswith("{") else {"raw": body}


def all_text(answer: dict) -> str:
    return json.dumps(answer.get("blocks", []), ensure_ascii=False) + answer.get("text", "")


def calls(service, method: str, since: int = 0):
    return [c for c in service["standin"].calls[since:] if c.method == method]


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def test_url_verification_challenge_is_answered(service):
    status, body = slack.send(
        service["base"] + "/slack/events",
        slack.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"),
        "application/json",
        SECRET,
    )
    assert status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in body


def test_deal_risk_answers_the_owner_ephemerally_with_escaped_name_and_buttons(service):
    status, answer = command(service, "/deal-risk", "  d00005 ", "U002")
    assert status == 200 and answer["response_type"] == "ephemeral"
    text = all_text(answer)
    assert "&lt;!channel&gt; &amp; friends (D00005)" in text and "<!channel>" not in text
    assert "risk *55%*" in text and "data as of 2024-03-01" in text and "Method: segment win rates shrunk" in text
    buttons = [b for b in answer["blocks"] if b["type"] == "actions"]
    assert buttons and buttons[0]["block_id"] == f"alert:{service['alert']}"


def test_deal_risk_accepts_a_pasted_crm_link(service):
    status, answer = command(service, "/deal-risk", "<https://crm.example.com/deals/D00005|Acme>", "UEXEC")
    assert status == 200 and "(D00005)" in all_text(answer)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("D99999", "I can't find a deal D99999 among the deals you can see"),
        ("", "Which deal?"),
        ("help", "/deal-risk D01234"),
        ("???", "is not a deal id"),
    ],
)
def test_deal_risk_without_a_usable_id_gets_a_short_hint(service, text, expected):
    status, answer = command(service, "/deal-risk", text, "U002")
    assert status == 200 and expected in all_text(answer) and "Traceback" not in all_text(answer)


def test_another_teams_rep_gets_a_polite_refusal_that_reveals_nothing(service):
    status, answer = command(service, "/deal-risk", "D00005", "U003")
    text = all_text(answer)
    assert status == 200 and "I can't find a deal D00005 among the deals you can see" in text
    assert "$45k" not in text and "rep_2" not in text and "channel" not in text


def test_not_yours_reads_exactly_like_not_found_for_open_and_closed_deals(service):
    """Ids cannot be enumerated: another team's open deal, another team's closed deal and a deal that does not
    exist get the same sentence (only the id typed differs)."""
    seen = {}
    for deal in ("D00005", "D00001", "D99999"):  # rep_2's open deal, a closed deal of another rep, no such deal
        status, answer = command(service, "/deal-risk", deal, "U003")
        assert status == 200
        seen[deal] = all_text(answer).replace(deal, "<id>")
    assert len(set(seen.values())) == 1, seen
    assert "closed" not in seen["D00001"] and "Lost" not in seen["D00001"] and "Won" not in seen["D00001"]
    status, answer = command(service, "/deal-risk", "D00001", "UEXEC")  # an executive may be told the truth
    assert status == 200 and "is not in the open pipeline as of 2024-03-01: it closed" in all_text(answer)


@pytest.mark.parametrize("deal", ["D00005", "D00001", "D99999"])
def test_someone_the_configuration_does_not_know_sees_nothing_about_any_deal(service, deal):
    status, answer = command(service, "/deal-risk", deal, "U777")
    text = all_text(answer)
    assert status == 200 and "I don't know who you are in the CRM" in text
    assert "rep_" not in text and "$" not in text and "closed" not in text


def test_a_reps_win_rate_is_shown_only_to_that_rep_their_managers_and_executives(service):
    _, mine = command(service, "/winrate", "rep", "U002")
    _, manager = command(service, "/winrate", "rep", "U901")
    _, executive = command(service, "/winrate", "rep", "UEXEC")
    _, stranger = command(service, "/winrate", "rep", "U777")
    reps = lambda answer: set(re.findall(r"\*(rep_\d+)\*", all_text(answer)))  # noqa: E731
    assert reps(mine) == {"rep_2"} and reps(manager) == {"rep_2"}, "mgr_a manages rep_2 only"
    assert len(reps(executive)) == 25 and not reps(stranger)
    _, asked = command(service, "/winrate", "rep_7", "U002")
    assert "No segment or field called 'rep_7'" in all_text(asked), "another rep by name reads as unknown"


def test_a_signed_request_sent_twice_is_refused_the_second_time(service):
    body = slack.slash_command("/pipeline", "", "U002")
    timestamp = int(time.time())
    first = slack.send(service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET, timestamp)
    again = slack.send(service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET, timestamp)
    assert first[0] == 200 and again[0] == 401 and "replay" in again[1]
    status, _ = command(service, "/pipeline", "", "U002")  # the same question asked anew is answered
    assert status == 200


@pytest.mark.parametrize(
    "headers, body, status",
    [
        ({"Content-Length": str(2 << 20)}, b"x" * 16, 413),
        ({}, b"", 411),
        ({"Content-Length": "many"}, b"token=1", 400),
    ],
)
def test_oversized_empty_and_malformed_bodies_get_a_4xx_before_anything_parses_them(service, headers, body, status):
    got = raw_post(service["base"] + "/slack/events", body, headers)
    assert got == status
    health = urllib.request.urlopen(service["base"] + "/healthz", timeout=5)
    assert health.status == 200, "the service keeps serving"


def raw_post(url: str, body: bytes, headers: dict) -> int:
    """A POST whose headers may lie about its body (what urllib would not send)."""
    parsed = urllib.parse.urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as connection:
        lines = [f"POST {parsed.path} HTTP/1.1", f"Host: {parsed.hostname}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        connection.shutdown(socket.SHUT_WR)
        reply = connection.makefile("rb").readline().decode()
    return int(reply.split()[1])


def test_forged_signature_is_rejected_and_changes_nothing(service):
    since = len(service["standin"].calls)
    # The click of a user who may acknowledge this alert (the acknowledge test below shows it, correctly signed,
    # updating the message well within half a second), but forged.
    body = slack.block_actions("U901", "alert_ack", str(service["alert"]), [])
    status, _ = slack.send(
        service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET, forged=True
    )
    assert status == 401
    time.sleep(0.5)
    assert not calls(service, "chat.update", since) and not calls(service, "chat.postEphemeral", since)
    row = AlertLedger(Store.open(service["store"])).get(service["alert"])
    assert row.state == "open" and not row.acked_by


def test_stale_timestamp_is_rejected(service):
    body = slack.slash_command("/deal-risk", "D00005", "U002")
    status, _ = slack.send(
        service["base"] + "/slack/events",
        body,
        "application/x-www-form-urlencoded",
        SECRET,
        timestamp=int(time.time()) - 6 * 60,
    )
    assert status == 401


def test_pipeline_winrate_and_alerts_answer_within_the_callers_scope(service):
    _, manager = command(service, "/pipeline", "", "U901")
    assert "Open pipeline (your team)" in all_text(manager)
    _, rep = command(service, "/pipeline", "", "U002")
    assert "Open pipeline (you)" in all_text(rep)
    _, winrate = command(service, "/winrate", "lead_source", "U002")
    assert "*Outbound* (lead_source)" in all_text(winrate) and "within chance" in all_text(winrate)
    _, segment = command(service, "/winrate", "APAC", "U002")
    assert "*APAC* (region)" in all_text(segment)
    _, alerts = command(service, "/alerts", "", "U002")
    assert f"#{service['alert']}" in all_text(alerts)


def test_a_user_without_permission_cannot_act_on_an_alert(service):
    since = len(service["standin"].calls)
    body = slack.block_actions("U003", "alert_ack", str(service["alert"]), [])
    status, _ = slack.send(service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET)
    assert status == 200
    refusal = wait_for(lambda: calls(service, "chat.postEphemeral", since))
    assert refusal[0].args["user"] == "U003" and "Only the people this alert was sent to" in refusal[0].args["text"]
    assert AlertLedger(Store.open(service["store"])).get(service["alert"]).state == "open"


def test_acknowledge_updates_the_message_in_place_once_even_on_a_double_click(service):
    alert_id = service["alert"]
    _, answer = command(service, "/deal-risk", "D00005", "U002")
    since = len(service["standin"].calls)
    for _ in range(2):  # two clicks: Slack sends each with its own trigger id and action time
        body = slack.block_actions("U901", "alert_ack", str(alert_id), answer["blocks"])
        status, _ = slack.send(service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET)
        assert status == 200
    update = wait_for(lambda: calls(service, "chat.update", since))
    time.sleep(0.3)
    assert len(calls(service, "chat.update", since)) == 1, "the second click changes nothing"
    args = update[0].args
    assert args["channel"] == "D002" and args["ts"] == "1700000001.000100"
    done = [b for b in args["blocks"] if b.get("block_id") == f"alert:{alert_id}:done"]
    assert done and done[0]["elements"][0]["text"].startswith(":white_check_mark: Acknowledged by <@U901> at ")
    assert not [b for b in args["blocks"] if b["type"] == "actions"]
    row = AlertLedger(Store.open(service["store"])).get(alert_id)
    assert row.state == "acknowledged" and row.acked_by == "U901"


def _burst(service, bodies: list[str]) -> list[int]:
    """Send every body at once, each from its own thread (as a team clicking together), and return the statuses."""
    statuses = [0] * len(bodies)
    start = threading.Barrier(len(bodies))

    def click(i: int) -> None:
        start.wait()
        statuses[i] = slack.send(
            service["base"] + "/slack/events", bodies[i], "application/x-www-form-urlencoded", SECRET
        )[0]

    threads = [threading.Thread(target=click, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


def _fresh_alert(service, deal: str) -> int:
    store = Store.open(service["store"])
    with store.transaction():
        alert = AlertLedger(store).open_episode(
            "stalled", deal, 0.6, False, ["user:rep_2", "user:mgr_a"], {}, datetime.now(UTC)
        )
    store.close()
    return alert.id


@pytest.mark.parametrize("action", ["alert_ack", "alert_snooze_1d"])
def test_twenty_concurrent_clicks_make_exactly_one_change(service, action):
    alert_id = _fresh_alert(service, "D00007" if action == "alert_ack" else "D00009")
    since = len(service["standin"].calls)
    message = [{"type": "actions", "block_id": f"alert:{alert_id}", "elements": []}]  # the alert's buttons
    bodies = [slack.block_actions("U901", action, str(alert_id), message) for _ in range(20)]
    assert _burst(service, bodies) == [200] * 20
    wait_for(lambda: calls(service, "chat.update", since))
    time.sleep(0.5)
    assert len(calls(service, "chat.update", since)) == 1, "one recorded change, one message update"
    row = AlertLedger(Store.open(service["store"])).get(alert_id)
    assert row.state == ("acknowledged" if action == "alert_ack" else "snoozed")
    # The same button again, minutes later: changes nothing, as documented.
    again = slack.send(
        service["base"] + "/slack/events",
        slack.block_actions("U002", action, str(alert_id), message),
        "application/x-www-form-urlencoded",
        SECRET,
    )
    assert again[0] == 200
    time.sleep(0.3)
    assert len(calls(service, "chat.update", since)) == 1
    assert AlertLedger(Store.open(service["store"])).get(alert_id).updated_at == row.updated_at


def test_snooze_until_a_date_from_the_modal(service):
    store = Store.open(service["store"])
    with store.db.conn:
        other = AlertLedger(store).open_episode(
            "high_value_at_risk", "D00052", 0.8, False, ["user:rep_2"], {}, datetime.now(UTC)
        )
        # the alert's message as it went out, where the modal says it is (a ts no other message of the module has)
        sent = [{"type": "section", "text": {"type": "mrkdwn", "text": "D00052 is at risk"}}]
        sent.append({"type": "actions", "block_id": f"alert:{other.id}", "elements": []})
        Outbox(store).enqueue(
            f"modal:{other.id}", "realtime", "user:rep_2", Message("at risk", sent), datetime.now(UTC)
        )
        [queued] = [m for m in Outbox(store).rows() if m.dedupe_key == f"modal:{other.id}"]
        store.outbox.mark_sent(queued.id, "sent", datetime.now(UTC), "D002", "1799999999.000001")
    since = len(service["standin"].calls)
    body = slack.view_submission("U002", other.id, "2030-01-15", ts="1799999999.000001")
    status, _ = slack.send(service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET)
    assert status == 200
    row = wait_for(lambda: (r := AlertLedger(Store.open(service["store"])).get(other.id)).state == "snoozed" and r)
    assert row.snoozed_until.isoformat().startswith("2030-01-15T08:00:00-05:00")
    [update] = wait_for(lambda: calls(service, "chat.update", since))
    assert update.args["channel"] == "D002" and update.args["ts"] == "1799999999.000001"
    blocks = json.loads(update.args["blocks"]) if isinstance(update.args["blocks"], str) else update.args["blocks"]
    assert blocks[0]["text"]["text"] == "D00052 is at risk", "the message itself, its buttons replaced by the note"
    assert "Snoozed" in json.dumps(blocks) and not calls(service, "chat.postEphemeral", since)


def test_a_snooze_date_that_is_not_after_today_keeps_the_modal_open_and_changes_nothing(service):
    alert_id = _fresh_alert(service, "D00011")
    today = datetime.now(ZoneInfo(CONFIG["timezone"])).date()  # the service's today, not the machine's (UTC)
    body = slack.view_submission("U002", alert_id, today.isoformat())
    status, answer = slack.send(service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET)
    assert status == 200
    assert json.loads(answer) == {"response_action": "errors", "errors": {"until": "Pick a day after today."}}
    time.sleep(0.3)  # the lazy listener has run by now, and must have seen the same refusal
    assert AlertLedger(Store.open(service["store"])).get(alert_id).state == "open"


def test_useful_or_not_is_recorded_once_per_person_and_replaces_only_the_feedback_buttons(service):
    alert_id = _fresh_alert(service, "D00015")
    since = len(service["standin"].calls)
    message = [
        {"type": "actions", "block_id": f"alert:{alert_id}", "elements": []},
        {"type": "actions", "block_id": f"feedback:{alert_id}", "elements": []},
    ]
    content_type = "application/x-www-form-urlencoded"
    for count, action in enumerate(("alert_useful", "alert_not_useful"), start=1):  # the rep changes their mind
        body = slack.block_actions("U002", action, str(alert_id), message)
        assert slack.send(service["base"] + "/slack/events", body, content_type, SECRET)[0] == 200
        wait_for(lambda count=count: len(calls(service, "chat.update", since)) >= count)
    outsider = slack.block_actions("U777", "alert_useful", str(alert_id), message)  # not a recipient
    assert slack.send(service["base"] + "/slack/events", outsider, content_type, SECRET)[0] == 200
    wait_for(lambda: calls(service, "chat.postEphemeral", since))
    summary = AlertLedger(Store.open(service["store"])).feedback_summary(datetime.now(UTC) - timedelta(days=1))
    assert summary["rules"]["stalled"] == (0, 1) and summary["answers"] == 1, "one answer per person, the latest"
    update = calls(service, "chat.update", since)[-1]
    blocks = json.loads(update.args["blocks"]) if isinstance(update.args["blocks"], str) else update.args["blocks"]
    assert blocks[0]["block_id"] == f"alert:{alert_id}", "the alert's own buttons stay"
    assert blocks[1]["type"] == "context" and "not useful" in blocks[1]["elements"][0]["text"]


def test_a_button_is_acknowledged_before_slack_is_called_so_a_slow_slack_cannot_miss_the_deadline(service):
    alert_id = _fresh_alert(service, "D00013")
    since = len(service["standin"].calls)
    release = threading.Event()
    service["standin"].fail_next("chat.update", ("hold", release))
    message = [{"type": "actions", "block_id": f"alert:{alert_id}", "elements": []}]
    try:
        body = slack.block_actions("U901", "alert_ack", str(alert_id), message)
        status, _ = slack.send(service["base"] + "/slack/events", body, "application/x-www-form-urlencoded", SECRET)
        assert status == 200
        held = wait_for(lambda: calls(service, "chat.update", since))
        assert not release.is_set() and len(held) == 1, "Slack got the update while the click was already answered"
    finally:
        release.set()
    assert AlertLedger(Store.open(service["store"])).get(alert_id).state == "acknowledged"


def test_app_home_is_published_and_a_replayed_retry_is_not_processed_twice(service):
    since = len(service["standin"].calls)
    body = slack.app_home_opened("U002", "Ev0HOME1")
    sent_at = int(time.time())
    status, _ = slack.send(service["base"] + "/slack/events", body, "application/json", SECRET, sent_at)
    assert status == 200
    published = wait_for(lambda: calls(service, "views.publish", since))
    assert published[0].args["user_id"] == "U002"
    view = published[0].args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["type"] == "home" and "Your deals at risk" in json.dumps(view)
    status, _ = slack.send(
        service["base"] + "/slack/events",
        body,
        "application/json",
        SECRET,
        sent_at + 3,  # Slack retries after its 3-second timeout: the same event, newly signed
        extra_headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert status == 200
    time.sleep(0.3)
    assert len(calls(service, "views.publish", since)) == 1


def test_app_home_is_republished_after_a_slack_5xx_and_not_for_the_messages_tab(service):
    since = len(service["standin"].calls)
    service["standin"].fail_next("views.publish", ("500",))
    status, _ = slack.send(
        service["base"] + "/slack/events", slack.app_home_opened("U002", "Ev0HOME2"), "application/json", SECRET
    )
    assert status == 200
    wait_for(lambda: len(calls(service, "views.publish", since)) >= 2, 10)  # the 500, then the retry a second later
    time.sleep(0.3)
    assert len(calls(service, "views.publish", since)) == 2
    since = len(service["standin"].calls)
    messages_tab = json.loads(slack.app_home_opened("U002", "Ev0HOME3"))
    messages_tab["event"]["tab"] = "messages"
    status, _ = slack.send(service["base"] + "/slack/events", json.dumps(messages_tab), "application/json", SECRET)
    assert status == 200
    time.sleep(0.5)
    assert not calls(service, "views.publish", since)


def test_healthz_reports_store_scheduler_and_last_refresh(service):
    with urllib.request.urlopen(service["base"] + "/healthz", timeout=5) as response:
        health = json.loads(response.read())
    assert health["store"]["ok"] and health["scheduler"]["running"]
    assert health["last_refresh"]["as_of"] == "2024-03-01"
    assert set(health["scheduler"]["next"]) == {"refresh", "daily", "weekly", "monthly", "tuning"}


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ('{"type": "event_callback", "event": ', "application/json"),
        ("\x00\xff garbage", "application/octet-stream"),
    ],
)
def test_a_signed_but_malformed_body_gets_a_4xx_not_a_500(service, body, content_type):
    status, _ = slack.send(service["base"] + "/slack/events", body, content_type, SECRET)
    assert 400 <= status < 500, status


def test_metrics_show_the_stores_state_and_this_process_answers_by_command(service):
    """`GET /metrics` in Prometheus's text format, parsed by prometheus-client's own parser: the outbox and alert
    gauges equal what the store holds, and a `/deal-risk` answered adds one observation to its histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, list]:
        with urllib.request.urlopen(service["base"] + "/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            families = text_string_to_metric_families(response.read().decode())
        return {family.name: family.samples for family in families}

    def deal_risk_answers(samples: dict) -> float:
        histogram = samples.get("salesintel_request_seconds", [])
        return sum(s.value for s in histogram if s.name.endswith("_count") and s.labels["command"] == "/deal-risk")

    before = scrape()
    assert command(service, "/deal-risk", "D00005", "U002")[0] == 200
    after = scrape()
    assert deal_risk_answers(after) == deal_risk_answers(before) + 1
    from salesintel.alerts.outbox import Outbox

    store = Store.open(service["store"])

    def outbox_matches() -> bool:  # the service keeps queueing and delivering: a scrape and a read may straddle one
        scraped = {(s.labels["kind"], s.labels["status"]): s.value for s in scrape()["salesintel_outbox_messages"]}
        return sum(scraped.values()) == sum(Outbox(store).statuses().values())

    assert wait_for(outbox_matches), "the outbox gauges equal what the store holds"
    alerts = {(s.labels["rule"], s.labels["state"]): s.value for s in after["salesintel_alerts"]}
    assert alerts.get(("high_value_at_risk", "open"), 0) + alerts.get(("high_value_at_risk", "acknowledged"), 0) >= 1
    [age] = after["salesintel_snapshot_age_seconds"]
    assert 0 <= age.value < 3600, "the fixture's snapshot was taken at start"
    [leader] = after["salesintel_scheduler_leader_info"]
    assert leader.labels["holder"], "a leader is named"
    [leading] = after["salesintel_leading"]
    assert leading.value == 1.0, "the only process leads"


def test_metrics_count_slack_api_calls_by_method_and_outcome(service):
    from prometheus_client.parser import text_string_to_metric_families

    def slack_calls() -> dict[tuple[str, str], float]:
        with urllib.request.urlopen(service["base"] + "/metrics", timeout=5) as response:
            families = {f.name: f.samples for f in text_string_to_metric_families(response.read().decode())}
        return {
            (s.labels["method"], s.labels["outcome"]): s.value
            for s in families.get("salesintel_slack_api_seconds", [])
            if s.name == "salesintel_slack_api_seconds_count"
        }

    service["standin"].fail_next("chat.update", ("500",))
    content_type = "application/x-www-form-urlencoded"
    for deal in ("D00017", "D00019"):  # the first update fails with a 5xx, the second goes through
        seen = slack_calls()
        alert_id = _fresh_alert(service, deal)
        message = [{"type": "actions", "block_id": f"alert:{alert_id}", "elements": []}]
        body = slack.block_actions("U901", "alert_ack", str(alert_id), message)
        assert slack.send(service["base"] + "/slack/events", body, content_type, SECRET)[0] == 200
        wait_for(lambda seen=seen: slack_calls() != seen)
    after = slack_calls()
    assert after.get(("chat.update", "http_500"), 0) >= 1
    assert after.get(("chat.update", "ok"), 0) >= 1


# Last: it stops the module's service.
def test_sigterm_drains_and_exits_cleanly_and_logs_hold_no_secret(service):
    process = service["process"]
    host, port = urllib.parse.urlsplit(service["base"]).hostname, urllib.parse.urlsplit(service["base"]).port
    idle = socket.create_connection((host, port), timeout=5)  # a client that connected and never sent a thing
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert time.monotonic() - started < 10, "an idle connection does not hold up the stop"
    idle.close()
    log = Path(service["log"]).read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines and lines[-1]["event"] == "stopped"
    assert all(line.startswith("{") for line in log.splitlines() if line.strip()), "every log line is JSON"
    assert TOKEN not in log and SECRET not in log and "xoxb-" not in log

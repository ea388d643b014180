"""A slash command whose answer is not ready within the budget: acknowledged at once, answered on Slack's
response_url when ready — through a real `salesintel run` on a PostgreSQL store whose tables another session has
locked (as a long migration or VACUUM FULL would), and through the budget alone with real HTTP follow-ups."""

from __future__ import annotations

import signal
import threading
import time

import psycopg
import yaml

from salesintel.alerts.render import Message
from salesintel.bot.slow_answers import WORKING, AnswerWithinBudget, post_to_response_url
from tests import slack_requests as slack
from tests.slack_standin import SlackStandIn
from tests.test_replicas import SECRET, _health, _start, _store_with_a_refresh

FORM = "application/x-www-form-urlencoded"


def test_an_answer_held_up_by_a_locked_database_follows_on_the_response_url(tmp_path, postgres_url):
    _store_with_a_refresh(postgres_url).close()
    config = {"bot": {"visibility": "everyone", "executives": ["UX"], "answer_budget_seconds": 0.5}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    standin = SlackStandIn().start()
    process, base = _start(tmp_path, standin, "slow", where=postgres_url)
    try:
        deadline = time.monotonic() + 60
        while not ((_health(base) or {}).get("start_up") == "done") and time.monotonic() < deadline:
            time.sleep(0.1)
        status, prompt = slack.send(
            base + "/slack/events", slack.slash_command("/deal-risk", "D00005", "UX"), FORM, SECRET
        )
        assert status == 200 and "D00005" in prompt and WORKING not in prompt, "a ready answer is the ack itself"
        with psycopg.connect(postgres_url) as blocker:  # a transaction holding the answer's tables
            blocker.execute("LOCK TABLE refreshes, snapshots IN ACCESS EXCLUSIVE MODE")
            body = slack.slash_command("/deal-risk", "D00005", "UX", standin.response_url("slow"))
            sent = time.monotonic()
            status, acked = slack.send(base + "/slack/events", body, FORM, SECRET)
            waited = time.monotonic() - sent
            assert status == 200 and WORKING in acked and waited < 2.5, (waited, acked)
            time.sleep(1.0)
            assert standin.follow_ups() == [], "nothing follows while the tables are locked"
        deadline = time.monotonic() + 10
        while not standin.follow_ups() and time.monotonic() < deadline:
            time.sleep(0.05)
        [follow_up] = standin.follow_ups()
        assert follow_up.args["path"].endswith("/slow") and follow_up.args["response_type"] == "ephemeral"
        assert follow_up.args["text"] in prompt, "the same answer, late"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        standin.stop()


def test_only_answers_past_the_budget_follow_up_and_failures_say_so():
    standin = SlackStandIn().start()
    within = AnswerWithinBudget(0.2)
    acks, outcomes, release = [], [], threading.Event()

    def ack(**kwargs):
        acks.append(kwargs)

    def done(how):
        outcomes.append(how)

    command = {"command": "/winrate", "response_url": standin.response_url("w")}
    within(ack, command, lambda: Message("quick", []), done)
    within(ack, command, lambda: release.wait(5) and Message("slow", [{"type": "divider"}]), done)
    assert [a["text"] for a in acks] == ["quick", WORKING] and outcomes == ["inline"]
    release.set()
    within(ack, command, lambda: 1 / 0, done)
    assert acks[-1]["text"].startswith("Sorry") and outcomes[-1] == "failed"
    within.shutdown()
    [follow_up] = standin.follow_ups()
    assert follow_up.args["text"] == "slow" and follow_up.args["blocks"] == [{"type": "divider"}]
    assert sorted(outcomes) == ["failed", "followed_up", "inline"]
    assert post_to_response_url(standin.response_url("x"), Message("direct", [])) == 200
    standin.stop()


def test_a_stopping_service_still_follows_up_an_answer_in_flight_and_the_terminal_waits():
    standin = SlackStandIn().start()
    within = AnswerWithinBudget(0.1)
    acks, outcomes = [], []
    command = {"command": "/pipeline", "response_url": standin.response_url("late")}
    within(lambda **a: acks.append(a), command, lambda: time.sleep(0.5) or Message("late answer", []), outcomes.append)
    assert acks[-1]["text"] == WORKING
    within.shutdown()  # SIGTERM: waits for the answer and its follow-up
    assert outcomes == ["followed_up"] and standin.follow_ups()[0].args["text"] == "late answer"
    terminal = AnswerWithinBudget(0.1)
    terminal(
        lambda **a: acks.append(a), {"command": "/pipeline"}, lambda: time.sleep(0.3) or Message("slow", []), print
    )
    assert acks[-1]["text"] == "slow", "no response_url (the terminal): the answer itself, however long it takes"
    terminal.shutdown()
    standin.stop()

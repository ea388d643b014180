"""Templates: Block Kit within Slack's limits, CRM strings escaped, the bundled data's reports honest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from salesintel.alerts.render import MAX_BLOCKS, escape_mrkdwn, render_message, within_limits
from salesintel.alerts.reports import ReportInputs, realtime_context
from salesintel.alerts.runs import AlertEnvironment, report_message
from salesintel.alerts.settings import AlertsSettings

HOSTILE = "<!channel> & <@U123> <https://evil.example|click>"


def texts(blocks: list[dict]) -> list[str]:
    found = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            found.append(block["text"]["text"])
        found += [
            e["text"] for e in block.get("elements", []) + block.get("fields", []) if isinstance(e.get("text"), str)
        ]
    return found


def test_escaping_follows_slacks_order():
    assert escape_mrkdwn("a & <b> &lt;") == "a &amp; &lt;b&gt; &amp;lt;"


def test_a_deal_named_channel_pings_nobody(bundled_store):
    refresh_row = bundled_store.latest_refresh()
    score = bundled_store.scores(refresh_row.id)[0]
    score = score._replace(
        deal_name=HOSTILE, sales_rep_id="<!here>", reasons=tuple(r._replace(text=HOSTILE) for r in score.reasons)
    )
    inputs = ReportInputs(refresh_row.metrics, [score], datetime.now(UTC), None, AlertsSettings())
    message = render_message("realtime", **realtime_context(score, "high_value_at_risk", HOSTILE, 1, HOSTILE, inputs))
    for text in [message.text, *texts(message.blocks)]:
        assert "<!" not in text and "<@U123>" not in text and "<https" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in message.blocks[0]["text"]["text"]


@pytest.mark.parametrize("kind", ["daily", "weekly", "monthly"])
def test_reports_on_the_bundled_data_render_within_limits_and_tell_the_truth(bundled_store, kind):
    env = AlertEnvironment(bundled_store, AlertsSettings(), ZoneInfo("America/New_York"))
    message, _ = report_message(kind, env, datetime(2024, 3, 2, tzinfo=UTC))
    assert len(message.blocks) <= MAX_BLOCKS and all(len(t) <= 3000 for t in texts(message.blocks))
    body = "\n".join(texts(message.blocks))
    assert "data as of 2024-03-01" in body
    honest = {
        "daily": "no reliable driver",
        "weekly": "No lead source is significantly weaker",
        "monthly": "No segment departed from its own baseline beyond chance",
    }
    assert honest[kind] in body
    assert json.loads(json.dumps(message.blocks)) == message.blocks  # what chat.postMessage sends, unchanged
    assert {block["type"] for block in message.blocks} <= {"header", "section", "context", "divider", "actions"}


def test_long_content_is_cut_to_slacks_limits():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 5000}} for _ in range(60)]
    limited = within_limits(blocks)
    assert len(limited) == MAX_BLOCKS and limited[-1]["elements"][0]["text"] == "… and 11 more blocks not shown"
    assert len(limited[0]["text"]["text"]) == 3000 and limited[0]["text"]["text"].endswith("…")

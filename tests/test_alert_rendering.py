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
    assert len(limited) == MAX_BLOCKS
    assert limited[-1]["elements"][0]["text"].startswith("Showing 49 of 60 parts of this answer (11 more lines)")
    assert len(limited[0]["text"]["text"]) == 3000 and limited[0]["text"]["text"].endswith("…"), "one long line"


def test_a_long_answer_continues_between_lines_never_mid_line():
    lines = [
        f"• *rep_{i}* (Owner): 45% (n=150, 95% CI 37–53%) vs 46% for the rest — within chance (q=1.00)"
        for i in range(80)
    ]
    limited = within_limits([{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}])
    assert len(limited) > 1 and all(len(b["text"]["text"]) <= 3000 for b in limited)
    assert "\n".join(b["text"]["text"] for b in limited).split("\n") == lines, "every line whole, in order"


def test_winrate_by_rep_on_the_bundled_data_shows_every_rep_whole(bundled_store):
    """`/winrate rep` was cut mid-line at 3,000 characters without notice."""
    metrics = bundled_store.latest_refresh().metrics
    rows = [s for s in metrics.segments if s.field == "sales_rep_id"]
    message = render_message(
        "answer_winrate",
        asked="rep",
        rows=rows,
        more=0,
        overall=metrics.overall,
        statement="",
        as_of="2024-03-01",
        stale=None,
        min_sample=50,
    )
    body = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert len(rows) == 25 and len(body) > 3000
    for segment in rows:
        assert f"*{segment.value}* (" in body
    assert "…" not in body

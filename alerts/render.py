"""Jinja2 rendering: templates hold the wording and layout, Python only decides what to say.

Slack messages are rendered from two templates per kind: `<kind>.blocks.j2` (Block Kit JSON) and `<kind>.txt.j2`
(the plain-text fallback Slack shows in notifications). Every value that comes from CRM data or from a user
goes through the `mrkdwn` filter, which escapes `&`, `<` and `>` so that a deal named `<!channel>` pings nobody.
After rendering, Slack's limits are enforced here, in one place: at most 50 blocks, 3,000 characters per section
text, 2,000 per context/field text, 3,000 for the fallback (with a visible "…" when cut).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from salesintel import templates
from salesintel.alerts.formatting import FILTERS
from salesintel.engine.risk_rule import is_at_risk

TEMPLATE_DIR = Path(templates.__file__).parent
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FALLBACK_TEXT = 3000


def escape_mrkdwn(value: object) -> str:
    """Slack's three control characters, in the order Slack documents (& first)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Message:
    """What goes into the outbox: fallback text plus Block Kit blocks."""

    text: str
    blocks: list[dict]


def environment() -> jinja2.Environment:
    """A strict environment: an undefined variable is an error, not a silently blank line."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    env.filters["mrkdwn"] = escape_mrkdwn
    env.tests["at_risk"] = is_at_risk  # `s is at_risk(rule)`: the one test of "at risk", never re-written in a template
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}
    return env


_ENVIRONMENT = environment()


def render_text(name: str, **context) -> str:
    """Render a plain-text template (terminal output)."""
    return _ENVIRONMENT.get_template(name).render(**context)


def render_message(kind: str, **context) -> Message:
    """Render `<kind>.blocks.j2` and `<kind>.txt.j2` into a Message within Slack's limits."""
    raw = _ENVIRONMENT.get_template(f"{kind}.blocks.j2").render(**context)
    try:
        blocks = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"template {kind}.blocks.j2 rendered invalid JSON: {error}") from error
    text = _ENVIRONMENT.get_template(f"{kind}.txt.j2").render(**context).strip()
    return Message(_cut(text, MAX_FALLBACK_TEXT), within_limits(blocks))


def within_limits(blocks: list[dict]) -> list[dict]:
    """Cut texts to Slack's limits and fold blocks beyond the 50th into a final note."""
    for block in blocks:
        if isinstance(block.get("text"), dict):
            block["text"]["text"] = _cut(block["text"]["text"], MAX_SECTION_TEXT)
        for element in block.get("fields", []) + (block.get("elements", []) if block["type"] == "context" else []):
            if "text" in element:
                element["text"] = _cut(element["text"], MAX_FIELD_TEXT)
    if len(blocks) > MAX_BLOCKS:
        hidden = len(blocks) - (MAX_BLOCKS - 1)
        blocks = blocks[: MAX_BLOCKS - 1] + [
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"… and {hidden} more blocks not shown"}]}
        ]
    return blocks


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

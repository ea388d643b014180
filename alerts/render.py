"""Jinja2 rendering: templates hold the wording and layout, Python only decides what to say.

Slack messages are rendered from two templates per kind: `<kind>.blocks.j2` (Block Kit JSON) and `<kind>.txt.j2`
(the plain-text fallback Slack shows in notifications). Every value that comes from CRM data or from a user
goes through the `mrkdwn` filter, which escapes `&`, `<` and `>` so that a deal named `<!channel>` pings nobody.
After rendering, Slack's limits are enforced here, in one place: a long section continues in further sections split
between lines, 2,000 characters per context/field text, 3,000 for the fallback (with a visible "…" when cut), and at
most 50 blocks, the rest left out with a visible "showing N of M" note.
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
    files: tuple = ()
    """Charts sent with the message (`alerts.charts.Chart`)."""


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
    """Fit Slack's limits without cutting a line in half: a section longer than 3,000 characters continues in more
    sections, split between lines (only a single line longer than that is cut, with "…"); field and context texts
    are cut at 2,000; past 50 blocks the rest is left out with a visible "showing N of M" note."""
    fitted = []
    for block in blocks:
        fitted += _split_section(block) if _section_text(block) else [block]
    for block in fitted:
        for element in block.get("fields", []) + (block.get("elements", []) if block["type"] == "context" else []):
            if "text" in element:
                element["text"] = _cut(element["text"], MAX_FIELD_TEXT)
    if len(fitted) > MAX_BLOCKS:
        kept = MAX_BLOCKS - 1
        lines = sum(len(_section_text(b).splitlines()) for b in fitted[kept:] if _section_text(b))
        more = f" ({lines} more lines)" if lines else ""
        note = f"Showing {kept} of {len(fitted)} parts of this answer{more}: ask for a narrower one to see the rest."
        fitted = fitted[:kept] + [{"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}]
    return fitted


def _section_text(block: dict) -> str | None:
    text = block.get("text")
    return text.get("text") if block.get("type") == "section" and isinstance(text, dict) else None


def _split_section(block: dict) -> list[dict]:
    text = _section_text(block)
    if len(text) <= MAX_SECTION_TEXT:
        return [block]
    parts, current = [], ""
    for line in text.split("\n"):
        line = _cut(line, MAX_SECTION_TEXT)
        if current and len(current) + 1 + len(line) > MAX_SECTION_TEXT:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    parts.append(current)
    first = {**block, "text": {**block["text"], "text": parts[0]}}
    rest = [{"type": "section", "text": {**block["text"], "text": part}} for part in parts[1:] if part.strip()]
    return [first, *rest]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def replace_buttons(blocks: list[dict], alert_id: int, note: str, group: str = "alert") -> list[dict]:
    """The message's blocks with one of this alert's button rows (`group`: "alert" for acknowledge and snooze,
    "feedback" for useful / not useful) replaced by a line saying what happened."""
    block_id = f"{group}:{alert_id}"
    return [
        b
        if b.get("block_id") != block_id
        else {"type": "context", "block_id": f"{block_id}:done", "elements": [{"type": "mrkdwn", "text": note}]}
        for b in blocks
    ]

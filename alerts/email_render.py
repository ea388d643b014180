"""A report as an email: the same Block Kit the channel gets, turned into HTML and a plain-text part.

Emails are not rendered from separate templates: one answer builder and one template per report make the
blocks, and this module only changes their form, so the email and the Slack message cannot say different things.
Pure: blocks and charts in, an `EmailMessage` out; nothing is sent here.

Slack's mrkdwn arrives escaped for Slack (`&amp;`, `&lt;`, `&gt;`: see `alerts.render.escape_mrkdwn`), which is
also valid HTML; the only raw `<` left are Slack's own sequences (links, mentions), turned into HTML or text here.
Quotes are escaped too, so nothing from CRM data can end an attribute or open a tag.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from salesintel.alerts.render import escape_mrkdwn

EMOJI = {
    ":warning:": "⚠️",
    ":red_circle:": "🔴",
    ":rotating_light:": "🚨",
    ":skull:": "💀",
    ":hourglass_flowing_sand:": "⏳",
    ":white_check_mark:": "✅",
}
_SLACK_SEQUENCE = re.compile(r"<([^<>]*)>")
_STYLES = (
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), "strong"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), "em"),
    (re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])"), "s"),
)
_CODE = re.compile(r"`([^`\n]+)`")


def _slack_sequence_html(match: re.Match) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith(("http://", "https://", "mailto:")):
        return f'<a href="{html.escape(html.unescape(target))}">{label or target}</a>'
    if target.startswith("@"):
        return f"@{label or target[1:]}"
    if target.startswith("!"):
        return f"@{label or target[1:].split('^')[0]}"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    return html.escape(inner)


def mrkdwn_to_html(text: str) -> str:
    """Slack mrkdwn (already escaped for Slack) → HTML: bold, italic, strike, code, links, line breaks."""
    text = text.replace('"', "&quot;").replace("'", "&#x27;")
    text = _SLACK_SEQUENCE.sub(_slack_sequence_html, text)
    for shortcode, emoji in EMOJI.items():
        text = text.replace(shortcode, emoji)
    text = _CODE.sub(r"<code>\1</code>", text)
    for pattern, tag in _STYLES:
        text = pattern.sub(rf"<{tag}>\1</{tag}>", text)
    return text.replace("\n", "<br>\n")


def mrkdwn_to_text(text: str) -> str:
    """Slack mrkdwn → what a plain-text mail reader should see: no markup, entities back to characters."""

    def sequence(match: re.Match) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith(("http://", "https://", "mailto:")):
            return f"{label} ({target})" if label else target
        return f"@{label or target[1:]}" if target[:1] in "@!" else (label or target)

    text = _SLACK_SEQUENCE.sub(sequence, text)
    for shortcode, emoji in EMOJI.items():
        text = text.replace(shortcode, emoji)
    for pattern, _ in _STYLES:
        text = pattern.sub(r"\1", text)
    return html.unescape(_CODE.sub(r"\1", text))


def _as_mrkdwn(text_object: dict) -> str:
    """A Block Kit text object as mrkdwn: plain_text is shown as typed, so it is escaped the way mrkdwn is."""
    text = text_object.get("text", "")
    return text if text_object.get("type") == "mrkdwn" else escape_mrkdwn(text)


def _block_parts(block: dict) -> list[tuple[str, str]]:
    """(kind, mrkdwn) pieces of one block that an email shows; buttons are Slack's alone and are left out."""
    kind = block.get("type")
    if kind == "header":
        return [("header", _as_mrkdwn(block["text"]))]
    if kind == "section":
        parts = [("section", _as_mrkdwn(block["text"]))] if "text" in block else []
        return parts + [("field", _as_mrkdwn(f)) for f in block.get("fields", [])]
    if kind == "context":
        return [("context", " ".join(_as_mrkdwn(e) for e in block.get("elements", []) if "text" in e))]
    if kind == "divider":
        return [("divider", "")]
    return []


def blocks_fragment(blocks: list[dict]) -> str:
    """The blocks as HTML elements (headers, paragraphs, muted context lines); also the dashboard's deal page."""
    body = []
    for block in blocks:
        for kind, text in _block_parts(block):
            if kind == "header":
                body.append(f"<h2>{mrkdwn_to_html(text)}</h2>")
            elif kind == "divider":
                body.append("<hr>")
            elif kind == "context":
                body.append(f'<p class="context" style="color:#616061;font-size:12px">{mrkdwn_to_html(text)}</p>')
            else:
                body.append(f"<p>{mrkdwn_to_html(text)}</p>")
    return "\n".join(body)


def blocks_to_html(blocks: list[dict], charts: list[dict], chart_cids: dict[str, str]) -> str:
    """The message as an HTML document: its blocks, then each chart inline with its alt text."""
    figures = [
        f'<figure><img src="cid:{chart_cids[chart["name"]]}" alt="{html.escape(chart["alt"])}" width="700">'
        f"<figcaption>{html.escape(chart['title'])}</figcaption></figure>"
        for chart in charts
    ]
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
        '<body style="font-family:Helvetica,Arial,sans-serif;font-size:14px;line-height:1.45">\n'
        + "\n".join([blocks_fragment(blocks), *figures])
        + "\n</body></html>\n"
    )


def blocks_to_text(blocks: list[dict], charts: list[dict]) -> str:
    """The plain-text part: every line the HTML has, and each chart's alt text (which states its numbers)."""
    lines = []
    for block in blocks:
        for kind, text in _block_parts(block):
            if kind == "divider":
                lines.append("-" * 40)
            elif kind == "header":
                plain = mrkdwn_to_text(text)
                lines += [plain, "=" * len(plain)]
            else:
                lines.append(mrkdwn_to_text(text))
    lines += [f"[Chart: {chart['title']}] {chart['alt']}" for chart in charts]
    return "\n\n".join(lines) + "\n"


def subject_of(blocks: list[dict], fallback: str) -> str:
    """The first header's text (e.g. "Weekly pipeline health · 2024-03-01"), else the fallback's first line."""
    for block in blocks:
        if block.get("type") == "header":
            return mrkdwn_to_text(_as_mrkdwn(block["text"])).strip()
    return mrkdwn_to_text(fallback).split("\n", 1)[0][:120]


def build_email(
    *,
    sender: str,
    recipient: str,
    text: str,
    blocks: list[dict],
    charts: list[dict],
    message_id: str,
    date: float | None = None,
) -> EmailMessage:
    """multipart/alternative (text, then HTML with the charts as related inline images). `message_id` is fixed by
    the caller from the outbox row, so a resend after a crash carries the same Message-ID (readers fold them)."""
    email = EmailMessage()
    email["Subject"] = subject_of(blocks, text)
    email["From"] = sender
    email["To"] = recipient
    email["Date"] = formatdate(date, localtime=False)
    email["Message-ID"] = message_id
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(blocks_to_text(blocks, charts))
    domain = message_id.rsplit("@", 1)[-1].rstrip(">")
    cids = {chart["name"]: make_msgid(chart["name"], domain=domain) for chart in charts}
    email.add_alternative(blocks_to_html(blocks, charts, {k: v[1:-1] for k, v in cids.items()}), subtype="html")
    html_part = email.get_payload()[1]
    for chart in charts:
        html_part.add_related(
            chart["png"], maintype="image", subtype="png", cid=cids[chart["name"]], filename=f"{chart['name']}.png"
        )
    return email

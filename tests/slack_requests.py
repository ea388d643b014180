"""Requests exactly as Slack sends them: real payload shapes, signed with v0 HMAC-SHA256 of `v0:{ts}:{body}`."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode


def _trigger_id() -> str:
    """Slack gives every interaction its own trigger id, so no two requests it sends have the same body."""
    return f"{time.time_ns()}.{next(_SEQUENCE)}.{secrets.token_hex(4)}"


_SEQUENCE = itertools.count()


def signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def send(
    url: str,
    body: str,
    content_type: str,
    secret: str,
    timestamp: int | None = None,
    forged: bool = False,
    extra_headers: dict | None = None,
) -> tuple[int, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature("not-the-secret" if forged else secret, ts, body),
        **(extra_headers or {}),
    }
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def slash_command(
    command: str, text: str, user: str, response_url: str = "https://hooks.slack.com/commands/T0001/1/abc"
) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0001",
            "team_domain": "acme",
            "channel_id": "C0SALES",
            "channel_name": "sales",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0001",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": _trigger_id(),
        }
    )


def block_actions(
    user: str, action_id: str, value: str, blocks: list[dict], channel: str = "D002", ts: str = "1700000001.000100"
) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": _trigger_id(),
        "team": {"id": "T0001", "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage"},
        "message": {"type": "message", "user": "UBOT", "ts": ts, "text": "Deal at risk", "blocks": blocks},
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T0001/2/def",
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"alert:{value}",
                "text": {"type": "plain_text", "text": "x"},
                "value": value,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission(user: str, alert_id: int, selected_date: str, ts: str = "1700000001.000100") -> str:
    payload = {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-verification-token",
        "trigger_id": _trigger_id(),
        "view": {
            "id": "V0001",
            "team_id": "T0001",
            "type": "modal",
            "callback_id": "snooze_until",
            "private_metadata": json.dumps({"alert_id": alert_id, "channel": "D002", "ts": ts}),
            "blocks": [],
            "state": {"values": {"until": {"date": {"type": "datepicker", "selected_date": selected_date}}}},
            "hash": "1.abc",
            "title": {"type": "plain_text", "text": "Snooze alert"},
            "app_id": "A0001",
            "bot_id": "B0001",
        },
        "response_urls": [],
        "is_enterprise_install": False,
    }
    return urlencode({"payload": json.dumps(payload)})


def app_home_opened(user: str, event_id: str) -> str:
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": "D002",
                "tab": "home",
                "event_ts": str(time.time()),
            },
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0001", "user_id": "UBOT", "is_bot": True}],
        }
    )


def url_verification(challenge: str) -> str:
    return json.dumps({"token": "legacy-verification-token", "challenge": challenge, "type": "url_verification"})

"""Delivery: take due messages from the outbox and hand them to Slack (or the terminal), exactly once each.

Slack Web API calls go through `slack_sdk`'s WebClient (base URL from SLACK_API_URL). Failures are sorted:
- HTTP 429: retried after the Retry-After Slack gives (seconds or an HTTP date), capped at
  `delivery.max_retry_after_seconds`;
- 5xx, timeouts (`delivery.request_timeout_seconds` per call), refused connections and Slack's transient errors:
  retried with exponential backoff, up to `delivery.max_attempts`, then failed and reported;
- every wait gets up to `delivery.jitter` more at random, and slack_sdk's own retries are off: one policy, here.
- permanent errors (`channel_not_found`, `not_in_channel`, `invalid_auth`, no Slack user for a rep, ...):
  failed at once, with the reason, reported on the ops channel and in the log.
Each channel is paced to about one message per second. A message is claimed (one statement, naming this process)
before the call, so two processes never send the same one. Each post carries Slack message metadata with its outbox
id; after a crash the next sender looks for that id in the channel's recent history before sending an orphaned
message again, so it is not posted twice (see `Deliverer.recover_orphans`).
"""

from __future__ import annotations

import base64
import logging
import os
import random
import secrets
import socket
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from salesintel.alerts.clock import Clock
from salesintel.alerts.outbox import CHART_KIND, RESOLUTION_KIND, THREADED_KINDS, Outbox, OutboxMessage
from salesintel.alerts.quiet_hours import next_working_moment
from salesintel.alerts.render import render_message, replace_buttons
from salesintel.alerts.settings import AlertsSettings
from salesintel.engine.store import Store

log = logging.getLogger("salesintel.delivery")

PERMANENT_ERRORS = {
    "channel_not_found",
    "not_in_channel",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "is_archived",
    "channel_is_archived",
    "user_not_found",
    "users_not_found",
    "missing_scope",
    "no_permission",
    "invalid_blocks",
    "msg_too_long",
    "no_text",
    "restricted_action",
    "user_disabled",
    "cannot_dm_bot",
    "invalid_arguments",
}


class PermanentError(Exception):
    """Retrying will not help (bad channel, bad token, unknown user...)."""


class TransientError(Exception):
    """Retrying later may help (5xx, timeout, connection refused...)."""


class RateLimited(TransientError):
    def __init__(self, retry_after: float):
        super().__init__(f"rate limited: retry after {retry_after:g} s")
        self.retry_after = retry_after


CHART_RETRY_MIN_SECONDS = 60.0
"""The shortest wait before a chart's upload is tried again (see `Deliverer._transient`)."""

METADATA_EVENT = "salesintel_message"
"""The Slack message metadata event type every post carries, with its outbox id."""


def retry_after_seconds(value: str | None, now: datetime) -> float:
    """Slack's Retry-After as seconds from `now`: a number of seconds, or an HTTP date (RFC 9110); 1 s if absent or
    unreadable, never negative."""
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class Sender(Protocol):
    quiet_hours_apply: bool
    """Whether direct messages through this sender wait for their recipient's working hours (Slack: yes; the
    terminal, whose reader is there now: no)."""

    def send(self, message: OutboxMessage) -> tuple[str | None, str | None]:
        """Deliver; return (channel id, message ts) or raise PermanentError / TransientError."""

    def find_delivered(self, message: OutboxMessage) -> tuple[str | None, str | None] | None:
        """Where this message was already delivered, if it can be found (after a crash), else None."""

    def timezone_of(self, target: str) -> ZoneInfo | None:
        """The recipient's time zone, if known (quiet hours)."""

    def charts_follow(self, message: OutboxMessage) -> bool:
        """Whether the message's charts go after it, each as an outbox row of its own (Slack's file uploads into
        its thread), rather than inside it (an email, the terminal)."""


class TerminalSender:
    """No Slack credentials: messages print to the terminal, one block per message."""

    quiet_hours_apply = False

    def find_delivered(self, message: OutboxMessage) -> None:
        """A terminal keeps no history to look in: an orphaned message is printed again."""
        return None

    def timezone_of(self, target: str) -> None:
        """The terminal's reader is here now: no quiet hours to keep."""
        return None

    def charts_follow(self, message: OutboxMessage) -> bool:
        """Printed with the message (their titles and alt text)."""
        return False

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def send(self, message: OutboxMessage) -> tuple[str | None, str | None]:
        target = message.target.split(":", 1)[-1]
        rule = "─" * 72
        charts = "".join(f"[chart: {a['title']}] {a['alt']}\n" for a in message.attachments)
        self.stream.write(
            f"{rule}\n→ {target} [{message.kind}]\n{blocks_as_text(message.blocks, message.text)}\n{charts}"
        )
        self.stream.flush()
        return None, None


def blocks_as_text(blocks: list[dict], fallback: str) -> str:
    """Block Kit as the terminal shows it: section texts, context lines, buttons in brackets (a link button with
    its address)."""
    lines = []
    for block in blocks:
        if block["type"] in ("section", "header"):
            lines.append(block["text"]["text"])
            accessory = block.get("accessory") or {}
            if accessory.get("type") == "button" and accessory.get("url"):
                lines.append(f"[{accessory['text']['text']}: {accessory['url']}]")
        elif block["type"] == "context":
            lines.append(" ".join(e.get("text", "") for e in block["elements"]))
        elif block["type"] == "actions":
            lines.append("   ".join(f"[{e['text']['text']}]" for e in block["elements"]))
    return "\n".join(lines) if lines else fallback


def known_zone(name: str | None) -> ZoneInfo | None:
    """The zone Slack names, or None when it names none or one this machine's time zone database lacks (logged):
    an unknown zone means the service's, not a failed delivery or schedule."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone from Slack", extra={"event": "unknown_time_zone", "zone": name})
        return None


def chart_file_name(chart: OutboxMessage) -> str:
    """A chart's file name in Slack: its name and its outbox row's id (unique, so found again after a crash)."""
    return f"{chart.attachments[0]['name']}-{chart.id}.png"


@dataclass
class SlackSender:
    """Posts with chat.postMessage; people are reached through a DM channel from conversations.open."""

    client: WebClient
    settings: AlertsSettings
    store: Store
    quiet_hours_apply = True
    _channel_ids: dict[str, str] = field(default_factory=dict)
    """Conversation ids: a person's DM channel by Slack user id, a channel's id by its `channel:#name` target."""
    _timezones: dict[str, ZoneInfo | None] = field(default_factory=dict)

    def timezone_of(self, target: str) -> ZoneInfo | None:
        """The recipient's time zone: `tz:` under alerts.routing.users, else Slack's `users.info` (asked once per
        person and kept); None for a channel, or when neither says."""
        kind, _, name = target.partition(":")
        if kind == "channel":
            return None
        configured = self.settings.routing.users.get(name, {}).get("tz") if kind == "user" else None
        if configured:
            return ZoneInfo(configured)
        slack_id = name if kind == "slack" else self._slack_user(name)
        if slack_id not in self._timezones:
            found = self._call(self.client.users_info, user=slack_id).get("user") or {}
            self._timezones[slack_id] = known_zone(found.get("tz"))
        return self._timezones[slack_id]

    def charts_follow(self, message: OutboxMessage) -> bool:
        return bool(message.attachments) and message.kind != CHART_KIND

    def send(self, message: OutboxMessage) -> tuple[str | None, str | None]:
        """Post the message; a repeat or a resolution of an alert goes into the thread of the alert's first
        message to that recipient, and that first message is updated to say so (see `_thread_of`). A chart is
        uploaded into the thread of the message it belongs to (`_upload`)."""
        if message.kind == CHART_KIND:
            return self._upload(message)
        original = self._thread_of(message)
        channel = original.slack_channel if original else self._post_to(message.target)
        response = self._call(
            self.client.chat_postMessage,
            channel=channel,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": METADATA_EVENT, "event_payload": {"outbox_id": message.id}},
            **({"thread_ts": original.slack_ts} if original else {}),
        )
        if original:
            self._update_original(original, message)
        if not original and message.target.startswith("channel:#") and response.get("channel"):
            self._channel_ids[message.target] = response["channel"]  # what the name points to now
        return response.get("channel"), response.get("ts")

    def _upload(self, chart: OutboxMessage) -> tuple[str | None, None]:
        """A chart row's file, into its message's thread with its title and alt text (the files upload API). Its
        file name carries the row's id, which is how `find_delivered` recognises it in the thread."""
        [attachment] = chart.attachments
        self._call(
            self.client.files_upload_v2,
            channel=attachment["channel"],
            thread_ts=attachment["thread_ts"],
            file=base64.b64decode(attachment["png"]),
            filename=chart_file_name(chart),
            title=attachment["title"],
            alt_txt=attachment["alt"],
        )
        return attachment["channel"], None

    def _thread_of(self, message: OutboxMessage) -> OutboxMessage | None:
        """The alert's first delivered message to this recipient, when `message` follows it up (a repeat, a
        resolution); None for anything else, and for a first message."""
        if message.alert_id is None or message.kind not in THREADED_KINDS:
            return None
        first = Outbox(self.store).first_delivered(message.alert_id, message.target)
        return first if first is not None and first.id != message.id else None

    def _update_original(self, original: OutboxMessage, follow_up: OutboxMessage) -> None:
        """The alert's first message shows the alert as it is now: a repeat's content, or its buttons replaced by
        the resolution. Best effort: the reply is delivered whatever happens here (a deleted original, say)."""
        if follow_up.kind == RESOLUTION_KIND:
            blocks = replace_buttons(original.blocks, follow_up.alert_id, follow_up.text)
            text = follow_up.text
        else:
            note = {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "Updated: the latest is in the thread."}],
            }
            blocks, text = [*follow_up.blocks, note], follow_up.text
        try:
            self._call(
                self.client.chat_update, channel=original.slack_channel, ts=original.slack_ts, text=text, blocks=blocks
            )
        except (PermanentError, TransientError) as error:
            log.warning(
                "original alert message not updated",
                extra={"event": "original_not_updated", "outbox_id": original.id, "error": str(error)},
            )

    def find_delivered(self, message: OutboxMessage) -> tuple[str | None, str | None] | None:
        """(channel, ts) of this message if the channel's recent history (or, for a threaded follow-up, its
        thread: replies are not in the channel's history) holds it by its metadata, else None."""
        if message.kind == CHART_KIND:
            return self._find_chart(message)
        original = self._thread_of(message)
        if original is not None:
            channel = original.slack_channel
            history = self._call(
                self.client.conversations_replies,
                channel=channel,
                ts=original.slack_ts,
                limit=RECENT_HISTORY,
                include_all_metadata=True,
            )
        else:
            channel = self._read_from(message.target)
            history = self._call(
                self.client.conversations_history, channel=channel, limit=RECENT_HISTORY, include_all_metadata=True
            )
        for posted in history.get("messages") or []:
            metadata = posted.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT and payload.get("outbox_id") == message.id:
                return channel, posted.get("ts")
        return None

    def _find_chart(self, chart: OutboxMessage) -> tuple[str, str | None] | None:
        """(channel, ts of the file's message) if the thread holds a file by this chart row's file name."""
        [attachment] = chart.attachments
        thread = self._call(
            self.client.conversations_replies,
            channel=attachment["channel"],
            ts=attachment["thread_ts"],
            limit=RECENT_HISTORY,
        )
        name = chart_file_name(chart)
        for posted in thread.get("messages") or []:
            if any(shared.get("name") == name for shared in posted.get("files") or []):
                return attachment["channel"], posted.get("ts")
        return None

    def _post_to(self, target: str) -> str:
        """Where to post: a channel as configured (by name, `#cro-vp`, it reaches whatever channel has that name
        now: a channel archived and made again, or renamed and replaced, is followed), a person's DM channel."""
        kind, _, name = target.partition(":")
        return name if kind == "channel" else self._dm_channel(kind, name)

    def _read_from(self, target: str) -> str:
        """Where to read history (after a crash): Slack reads a channel by id only. For a channel configured by
        name, the id Slack answered the latest post to it with (this process's, else the outbox's). None yet
        (nothing ever reached that channel): its name, whose history Slack will not read, so that one message may
        be posted again."""
        kind, _, name = target.partition(":")
        if kind != "channel":
            return self._dm_channel(kind, name)
        if not name.startswith("#"):
            return name
        if target not in self._channel_ids:
            known = Outbox(self.store).channel_id(target)
            if known is None:
                return name
            self._channel_ids[target] = known
        return self._channel_ids[target]

    def _dm_channel(self, kind: str, name: str) -> str:
        slack_id = name if kind == "slack" else self._slack_user(name)
        if slack_id not in self._channel_ids:
            opened = self._call(self.client.conversations_open, users=slack_id)
            self._channel_ids[slack_id] = opened["channel"]["id"]
        return self._channel_ids[slack_id]

    def _slack_user(self, person: str) -> str:
        entry = self.settings.routing.users.get(person, {})
        if entry.get("slack"):
            return entry["slack"]
        cached = self.store.slack_users().get(person)
        if cached:
            return cached
        if not entry.get("email"):
            raise PermanentError(f"no Slack user for {person}: add slack or email under alerts.routing.users")
        found = self._call(self.client.users_lookupByEmail, email=entry["email"])
        slack_id = found["user"]["id"]
        self.store.save_slack_user(person, slack_id, entry["email"], datetime.now(UTC))
        return slack_id

    @staticmethod
    def _call(method: Callable, **kwargs):
        try:
            return method(**kwargs)
        except SlackApiError as error:
            status = error.response.status_code
            if status == 429:
                headers = {name.lower(): value for name, value in (error.response.headers or {}).items()}
                raise RateLimited(retry_after_seconds(headers.get("retry-after"), datetime.now(UTC))) from error
            if status >= 500:
                raise TransientError(f"Slack HTTP {status}") from error
            code = error.response.get("error") if isinstance(error.response.data, dict) else None
            if code in PERMANENT_ERRORS:
                raise PermanentError(code) from error
            raise TransientError(f"Slack error {code or status}") from error
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            raise TransientError(f"cannot reach Slack: {error}") from error


class Deliverer:
    """Sends due outbox messages in order, pacing each channel, retrying and reporting as documented above."""

    def __init__(
        self,
        store: Store,
        sender: Sender,
        settings: AlertsSettings,
        clock: Clock,
        last_sent: dict[str, datetime] | None = None,
        holder: str | None = None,
        rng: random.Random | None = None,
        timezone: ZoneInfo | None = None,
    ):
        """`last_sent` (target → when) carries per-channel pacing across deliverers of one process; `holder` names
        this process in its claims; `rng` draws the retry jitter; `timezone` is the service's, for a recipient whose
        own zone is not known (quiet hours)."""
        self.store, self.sender, self.settings, self.clock = store, sender, settings, clock
        self.timezone = timezone or ZoneInfo("UTC")
        self.outbox = Outbox(store)
        self._last_sent = last_sent if last_sent is not None else {}
        self.holder = holder or process_name()
        self._rng = rng or random.Random()

    def recover_orphans(self) -> dict[str, int]:
        """Messages another (dead or former) sender left in flight: each one found in Slack's recent history by its
        metadata is marked sent, not posted again; the rest go back to the queue. Call while holding the lease."""
        counts = {"found": 0, "requeued": 0}
        for message in self.outbox.orphans(self.holder):
            try:
                found = self.sender.find_delivered(message)
            except (TransientError, PermanentError) as error:
                found = None
                log.warning(
                    "history lookup failed",
                    extra={"event": "recovery_lookup_failed", "outbox_id": message.id, "error": str(error)},
                )
            if found:
                self._sent(message, *found, "in flight at a crash; found in Slack")
                counts["found"] += 1
            elif self.outbox.requeue(message.id, "in flight at a crash; not found in Slack: sent again"):
                counts["requeued"] += 1
        if any(counts.values()):
            log.warning("recovered in-flight messages", extra={"event": "recovered_in_flight", **counts})
        return counts

    def deliver_due(self, limit: int | None = None, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Send every message due now (in id order); returns how many were sent."""
        sent = 0
        while not should_stop():
            batch = self.outbox.due(self.clock.now(), limit=50)
            if not batch:
                return sent
            for message in batch:
                if should_stop() or (limit is not None and sent >= limit):
                    return sent
                if self._held_for_working_hours(message):
                    continue
                hold = timedelta(seconds=self.settings.delivery.claim_seconds)
                if not self.outbox.claim(message.id, self.holder, self.clock.now(), hold):
                    continue  # another process took it
                sent += self._deliver(message)
        return sent

    def _held_for_working_hours(self, message: OutboxMessage) -> bool:
        """A direct message due outside its recipient's working hours waits for the next one (quiet hours): its
        next attempt moves there, nothing is counted as an attempt. Reports to channels and ops messages go now."""
        hours = self.settings.quiet_hours
        if (
            not hours.enabled
            or not self.sender.quiet_hours_apply
            or message.kind not in THREADED_KINDS
            or message.target.startswith("channel:")
        ):
            return False
        try:
            zone = self.sender.timezone_of(message.target) or self.timezone
        except (TransientError, PermanentError):
            zone = self.timezone  # Slack could not say: the service's zone, rather than no quiet hours at all
        until = next_working_moment(self.clock.now(), zone, hours)
        if until is None:
            return False
        local = until.astimezone(zone)
        if hours.outside == "digest" and message.kind != RESOLUTION_KIND:
            if not self.outbox.fold(message.id, f"quiet hours: held for the next daily digest ({zone.key})"):
                return True  # another process has it
            log.info(
                "held for the digest",
                extra={"event": "quiet_hours_digest", "outbox_id": message.id, "zone": zone.key},
            )
            return True
        # Stored in UTC like every time the outbox compares (as text)
        self.outbox.defer(message.id, until.astimezone(UTC), f"quiet hours: waits for {local:%a %H:%M} {zone.key}")
        log.info(
            "held for working hours",
            extra={"event": "quiet_hours", "outbox_id": message.id, "until": until.isoformat(), "zone": zone.key},
        )
        return True

    def _deliver(self, message: OutboxMessage) -> int:
        pace = timedelta(seconds=self.settings.delivery.channel_pace_seconds)
        last = self._last_sent.get(message.target)
        if last and self.clock.now() - last < pace:
            self.clock.sleep((last + pace - self.clock.now()).total_seconds())
        if message.last_error and not message.last_error.startswith("rate limited"):
            # The last attempt failed in a way that may still have posted it (a timeout, a 5xx): look first.
            try:
                found = self.sender.find_delivered(message)
            except (TransientError, PermanentError):
                found = None
            if found:
                self._sent(message, *found, "an earlier attempt reached Slack")
                return 0
        try:
            channel, ts = self.sender.send(message)
        except RateLimited as error:
            cap = self.settings.delivery.max_retry_after_seconds
            wait = self._jittered(min(error.retry_after, cap))
            self.outbox.mark_retry(message.id, self.clock.now() + timedelta(seconds=wait), str(error))
            log.warning(
                "rate limited",
                extra={
                    "event": "delivery_rate_limited",
                    "outbox_id": message.id,
                    "retry_after": error.retry_after,
                    "waiting": wait,
                    "capped": error.retry_after > cap,
                },
            )
            return 0
        except TransientError as error:
            return self._transient(message, error)
        except PermanentError as error:
            self._failed(message, str(error))
            return 0
        self._last_sent[message.target] = self.clock.now()
        self._sent(message, channel, ts)
        log.info(
            "delivered",
            extra={"event": "delivered", "outbox_id": message.id, "kind": message.kind, "target": message.target},
        )
        return 1

    def _sent(self, message: OutboxMessage, channel: str | None, ts: str | None, note: str | None = None) -> None:
        """Marked sent; its charts, when they follow it (Slack), queued in the same transaction."""
        charts_of = message if self.sender.charts_follow(message) else None
        self.outbox.mark_sent(message.id, self.clock.now(), channel, ts, note, charts_of=charts_of)

    def _transient(self, message: OutboxMessage, error: Exception) -> int:
        attempts = message.attempts + 1
        if attempts >= self.settings.delivery.max_attempts:
            self._failed(message, f"gave up after {attempts} attempts: {error}")
            return 0
        delay = self._jittered(
            min(
                self.settings.delivery.backoff_seconds * 2 ** (attempts - 1), self.settings.delivery.max_backoff_seconds
            )
        )
        if message.kind == CHART_KIND:
            # Slack shares an uploaded file in its thread a moment after the call returns: a retry looks for it
            # there first (`find_delivered`), so it must not look before an upload that timed out could show.
            delay = max(delay, CHART_RETRY_MIN_SECONDS)
        self.outbox.mark_retry(message.id, self.clock.now() + timedelta(seconds=delay), str(error))
        log.warning(
            "delivery retry",
            extra={"event": "delivery_retry", "outbox_id": message.id, "error": str(error), "retry_in": delay},
        )
        return 0

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 + self._rng.uniform(0, self.settings.delivery.jitter))

    def _failed(self, message: OutboxMessage, reason: str) -> None:
        self.outbox.mark_failed(message.id, reason)
        log.error(
            "delivery failed",
            extra={"event": "delivery_failed", "outbox_id": message.id, "reason": reason, "target": message.target},
        )
        if message.kind == "ops":
            return
        target = message.target.split(":", 1)[-1]
        problem = f"could not deliver {message.kind} message #{message.id} to {target}: {reason}"
        if message.kind == CHART_KIND:
            chart = message.attachments[0]
            problem = (
                f"could not upload the chart “{chart['title']}” (outbox #{message.id}) into the thread of "
                f"the {chart.get('report', 'report')} report in {target}: {reason}"
                + (
                    ". The Slack app needs the files:write scope: reinstall it from slack-manifest.yaml"
                    if reason == "missing_scope"
                    else ""
                )
                + ". The report itself was posted; other charts failing the same way today are not reported again"
            )
        rendered = render_message("ops", problem=problem, at=self.clock.now().strftime("%Y-%m-%d %H:%M UTC"))
        ops_channel = f"channel:{self.settings.routing.channels['ops']}"
        # One report per target, reason and day: a rep with no Slack user must not flood the ops channel.
        key = f"ops:failed:{message.target}:{reason.split(':')[0]}:{self.clock.now().date().isoformat()}"
        with self.store.transaction():
            self.outbox.enqueue(key, "ops", ops_channel, rendered, self.clock.now())


SlackCallObserver = Callable[[str, float, str], None]
"""Told each Web API call: method, seconds, outcome ("ok", Slack's error code, "http_<status>" or "timeout")."""


class ObservedWebClient(WebClient):
    """A WebClient that tells an observer (the service's metrics) how each call went and how long it took."""

    def __init__(self, *args, observe: SlackCallObserver, **kwargs):
        super().__init__(*args, **kwargs)
        self._observe = observe

    def __deepcopy__(self, memo: dict) -> ObservedWebClient:
        """Bolt deep-copies a request for its lazy listeners; the observer (the service's metrics) is shared, so the
        client is too (it holds no per-request state)."""
        return self

    def api_call(self, api_method: str, **kwargs):
        started = time.perf_counter()
        outcome = "ok"
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            status, data = error.response.status_code, error.response.data
            code = data.get("error") if isinstance(data, dict) and status == 200 else None
            outcome = code or f"http_{status}"  # Slack's own error code only on a 200 (`ok: false`)
            raise
        except TimeoutError:
            outcome = "timeout"
            raise
        except OSError:
            outcome = "connection"
            raise
        finally:
            self._observe(api_method, time.perf_counter() - started, outcome)


def slack_client(
    token: str | None, base_url: str, timeout: float = 5.0, observe: SlackCallObserver | None = None
) -> WebClient:
    """A WebClient against `base_url` (which must end with '/'), without the SDK's own retries (its default retries
    a failed connection once, which double-posted): the outbox retries, with one policy. With `observe`, every
    call is reported to it (`ObservedWebClient`)."""
    options = {
        "token": token,
        "base_url": base_url if base_url.endswith("/") else base_url + "/",
        "timeout": int(round(timeout)) or 1,
        "retry_handlers": [],
    }
    return ObservedWebClient(**options, observe=observe) if observe else WebClient(**options)


def process_name() -> str:
    """This process, as claims and leases name it: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


RECENT_HISTORY = 100
"""How many of a channel's latest messages are searched for an orphaned message (it was in flight moments before
the crash, so it is among the newest)."""

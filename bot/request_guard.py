"""What a request to `/slack/events` must pass before Bolt sees it: a size limit, a readable body, and a valid,
fresh Slack signature that has not been seen before.

Slack signs each request with the signing secret over `v0:<timestamp>:<body>` and Bolt checks it, with a five-minute
window on the timestamp. Within that window a captured request could be sent again unchanged and would verify: this
guard remembers every signature it accepted for the window and refuses a second copy. The service keeps that memory
beside the store (`engine.store.replay_memory`), so a copy sent to another replica is refused too. (Slack's own
retries carry a new timestamp, so a new signature: they pass.) Oversized or unreadable bodies are refused with a
4xx before anything parses them.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

WINDOW_SECONDS = 5 * 60
"""Slack's replay window: a request whose timestamp is older is refused by the signature check itself."""
MAX_BODY_BYTES = 1 << 20
"""Slack's payloads are a few kilobytes; a megabyte leaves room for large modal submissions."""


@dataclass(frozen=True)
class Refusal:
    status: str
    reason: str


class ReplayMemory(Protocol):
    def remember(self, signature: str, now: float) -> bool:
        """True when the signature is new (and now remembered), False when it was accepted within the window.
        (The shared memory also takes `keep_until` and answers `seen`, for the dashboard: `SharedReplayMemory`.)"""

    def remembered(self, now: float) -> int:
        """How many signatures were accepted within the window."""


class LocalReplayMemory:
    """One process's memory of accepted signatures (one-off apps and tests; the service shares its memory)."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS):
        self._window = window_seconds
        self._seen: set[str] = set()
        self._arrivals: deque[tuple[float, str]] = deque()
        """Accepted signatures oldest first, so forgetting expired ones costs only what expired (a scan of the
        whole window per request made each request slower the busier the server was)."""
        self._lock = threading.Lock()

    def remember(self, signature: str, now: float) -> bool:
        with self._lock:
            while self._arrivals and now - self._arrivals[0][0] > self._window:
                self._seen.discard(self._arrivals.popleft()[1])
            if signature in self._seen:
                return False
            self._seen.add(signature)
            self._arrivals.append((now, signature))
            return True

    def remembered(self, now: float) -> int:
        with self._lock:
            return sum(1 for at, _ in self._arrivals if now - at <= self._window)


class RequestGuard:
    def __init__(
        self,
        signing_secret: str,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = MAX_BODY_BYTES,
        memory: ReplayMemory | None = None,
    ):
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._clock = clock
        self._max = max_body_bytes
        self.memory = memory or LocalReplayMemory()

    def check(self, environ: dict) -> Refusal | None:
        """None to pass the request on (its body put back for Bolt to read), or why it is refused."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return Refusal("400 Bad Request", "invalid Content-Length")
        if length <= 0:
            return Refusal("411 Length Required", "a body with its Content-Length is required")
        if length > self._max:
            return Refusal("413 Content Too Large", f"body of {length} bytes is over the {self._max}-byte limit")
        body = environ["wsgi.input"].read(length)
        if len(body) != length:
            return Refusal("400 Bad Request", "body shorter than its Content-Length")
        environ["wsgi.input"] = io.BytesIO(body)
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        if not self._verifier.is_valid(body, timestamp, signature):
            return Refusal("401 Unauthorized", "invalid or expired Slack signature")
        malformed = _malformed(body, environ.get("CONTENT_TYPE", ""))
        if malformed:
            return Refusal("400 Bad Request", malformed)
        if not self.memory.remember(signature, self._clock()):
            return Refusal("401 Unauthorized", "a request with this signature was already accepted (replay)")
        return None


def _malformed(body: bytes, content_type: str) -> str | None:
    """Why a body is not one Slack sends (so Bolt would fail on it with a 500), or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    try:
        if content_type.startswith("application/json"):
            json.loads(text)
        elif text.startswith("payload=") or "&payload=" in text:  # a slash command's form has none: not parsed
            payload = parse_qs(text, keep_blank_values=True).get("payload")
            if payload is not None:
                json.loads(payload[0])
    except ValueError as error:
        return f"body is not valid JSON where Slack sends JSON ({error.__class__.__name__})"
    return None


class _Clock:
    """slack_sdk's verifier asks its clock for `now()`."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock

    def now(self) -> float:
        return self._clock()

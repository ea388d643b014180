"""Who may open the dashboard: short-lived, single-use signed links from `/salesintel dashboard`, exchanged for a
signed session cookie.

A token is `<payload>.<signature>`: the payload (base64url JSON) names the Slack user, what the token is for
("link" or "session"), when it expires and a random nonce; the signature is HMAC-SHA256 over it with the
dashboard secret. Nothing is stored per session but its end: signing out puts the session's nonce in the shared
memory until it would have expired, so a copied cookie dies with it. Every replica that shares the secret accepts
the cookie, and each request identifies the viewer again from the Slack id with the current configuration
(`bot.people`), so a person removed from `alerts.routing.users` loses their deals at once. A link is spent the
first time it is used: its nonce goes into the replay memory the replicas share (the one that refuses replayed
Slack requests), so a link that leaked into a browser history or a forwarded message opens nothing.

The secret: `SALESINTEL_DASHBOARD_SECRET`, else derived from the Slack signing secret (or app token), which every
replica has; without either (terminal mode) a random one per process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

LINK, SESSION = "link", "session"


def dashboard_secret(explicit: str | None, slack_secret: str | None) -> bytes:
    """The key links and sessions are signed with (see the module docstring)."""
    if explicit:
        return explicit.encode()
    if slack_secret:
        return hmac.new(slack_secret.encode(), b"salesintel dashboard v1", hashlib.sha256).digest()
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    slack_id: str
    purpose: str
    expires: float
    nonce: str


@dataclass(frozen=True)
class DashboardAccess:
    secret: bytes
    link_seconds: float
    session_seconds: float
    spend: Callable[[str, float, float], bool]
    """Remembers a key (key, now, keep until): True the first time (`SharedReplayMemory.remember`). Spent links and
    signed-out sessions are kept so, until they would have expired."""
    seen: Callable[[str, float], bool]
    """Whether a key is remembered (`SharedReplayMemory.seen`)."""

    def sign(self, slack_id: str, purpose: str, now: datetime) -> str:
        lifetime = self.link_seconds if purpose == LINK else self.session_seconds
        payload = {"u": slack_id, "p": purpose, "e": now.timestamp() + lifetime, "n": secrets.token_urlsafe(12)}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._signature(body)}"

    def _signature(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())

    def verify(self, token: str | None, purpose: str, now: datetime) -> Claims | None:
        """The token's claims when it is well signed, for `purpose` and not expired; else None."""
        if not token or token.count(".") != 1:
            return None
        body, signature = token.split(".")
        if not hmac.compare_digest(signature, self._signature(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
            claims = Claims(str(payload["u"]), payload["p"], float(payload["e"]), str(payload["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        if claims.purpose != purpose or claims.expires <= now.timestamp():
            return None
        return claims

    def session(self, token: str | None, now: datetime) -> Claims | None:
        """A session cookie's claims, unless it expired or was signed out (on any replica)."""
        claims = self.verify(token, SESSION, now)
        if claims is None or self.seen(f"dashboard-signed-out:{claims.nonce}", now.timestamp()):
            return None
        return claims

    def sign_out(self, token: str | None, now: datetime) -> None:
        """The session ends for every copy of its cookie, not only in this browser."""
        claims = self.verify(token, SESSION, now)
        if claims is not None:
            self.spend(f"dashboard-signed-out:{claims.nonce}", now.timestamp(), claims.expires)

    def link_claims(self, token: str | None, now: datetime) -> Claims | None:
        """A link's claims while it can still be used (well signed, not expired, not spent), without spending it."""
        claims = self.verify(token, LINK, now)
        if claims is None or self.seen(f"dashboard-link:{claims.nonce}", now.timestamp()):
            return None
        return claims

    def redeem_link(self, token: str | None, now: datetime) -> Claims | None:
        """A link's claims, once: a valid link used a second time is refused."""
        claims = self.verify(token, LINK, now)
        if claims is None or not self.spend(f"dashboard-link:{claims.nonce}", now.timestamp(), claims.expires):
            return None
        return claims

"""Who gets what: a deal's alert goes to its rep and the rep's manager; each report kind to its channel.

Targets are symbolic in the outbox (`user:rep_7`, `channel:#cro-vp`) and become Slack ids only at delivery, so a
users mapping fixed after an alert was queued still reaches the right person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from salesintel.alerts.settings import EmailSettings, RoutingSettings

EMAIL_PREFIX = "email:"
"""An outbox target delivered by email (`email:address`); every other target is Slack's."""


def deal_recipients(rep_id: str, routing: RoutingSettings) -> list[str]:
    """The rep, then the rep's manager (if configured)."""
    recipients = [f"user:{rep_id}"]
    manager = routing.users.get(rep_id, {}).get("manager")
    if manager:
        recipients.append(f"user:{manager}")
    return recipients


def report_target(kind: str, routing: RoutingSettings) -> str:
    return f"channel:{routing.channels[kind]}"


def managers_of(person: str, routing: RoutingSettings) -> list[str]:
    """The chain of managers above `person` (rep or manager id), nearest first."""
    chain, current = [], person
    while (manager := routing.users.get(current, {}).get("manager")) and manager not in chain:
        chain.append(manager)
        current = manager
    return chain


def slack_mentions(routing: RoutingSettings, cached: dict[str, str]) -> dict[str, str]:
    """rep/manager id → `<@U…>` for everyone whose Slack user id is known (config first, then the store cache)."""
    known = {**cached, **{person: entry["slack"] for person, entry in routing.users.items() if entry.get("slack")}}
    return {person: f"<@{slack_id}>" for person, slack_id in known.items()}


@dataclass(frozen=True)
class DigestRecipient:
    """Who gets a report as a digest of their own: where (`email:address`, or `user:person` for a Slack DM) and in
    which time zone it is due at the report's hour."""

    target: str
    zone: ZoneInfo | None
    """`tz:` under routing.users, else Slack's for that person; None for the service's."""


def digest_recipients(
    kind: str,
    email: EmailSettings,
    routing: RoutingSettings,
    zone_of: Callable[[str], ZoneInfo | None] | None = None,
) -> list[DigestRecipient]:
    """Who gets the `kind` digest of their own: by email (`alerts.email.digests`: addresses, or people under
    routing.users with their `email:`) and by Slack DM (`alerts.routing.digests`: people). A person's zone is their
    `tz:`, else what `zone_of(person)` says (Slack's `users.info`). Entries were checked when the settings loaded
    (`AlertsSettings`); someone listed twice for email (as a person and as an address) gets one."""

    def zone(person: str) -> ZoneInfo | None:
        entry = routing.users[person]
        return ZoneInfo(entry["tz"]) if entry.get("tz") else zone_of(person) if zone_of else None

    by_email: dict[str, DigestRecipient] = {}
    for entry in email.digests.get(kind, []) if email.enabled else []:
        found = (
            DigestRecipient(f"{EMAIL_PREFIX}{entry}", None)
            if "@" in entry
            else DigestRecipient(f"{EMAIL_PREFIX}{routing.users[entry]['email']}", zone(entry))
        )
        key = found.target.lower()  # with a zone if either entry has one
        if key not in by_email or (by_email[key].zone is None and found.zone is not None):
            by_email[key] = found
    by_dm = {person: DigestRecipient(f"user:{person}", zone(person)) for person in routing.digests.get(kind, [])}
    return [*by_email.values(), *by_dm.values()]

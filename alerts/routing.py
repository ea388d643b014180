"""Who gets what: a deal's alert goes to its rep and the rep's manager; each report kind to its channel.

Targets are symbolic in the outbox (`user:rep_7`, `channel:#cro-vp`) and become Slack ids only at delivery, so a
users mapping fixed after an alert was queued still reaches the right person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from salesintel.alerts.settings import EmailSettings, RoutingSettings


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
class EmailRecipient:
    address: str
    zone: ZoneInfo | None
    """The recipient's time zone (`tz:` under routing.users, else Slack's for that person), None for the
    service's."""


def digest_recipients(
    kind: str,
    email: EmailSettings,
    routing: RoutingSettings,
    zone_of: Callable[[str], ZoneInfo | None] | None = None,
) -> list[EmailRecipient]:
    """Who gets the `kind` digest by email: each entry an address, or a person under routing.users (their `email:`,
    and `tz:` or else what `zone_of(person)` says: Slack's `users.info`). Entries were checked when the settings
    loaded (`AlertsSettings`)."""
    recipients: dict[str, EmailRecipient] = {}
    for entry in email.digests.get(kind, []) if email.enabled else []:
        if "@" in entry:
            found = EmailRecipient(entry, None)
        else:
            person = routing.users[entry]
            zone = ZoneInfo(person["tz"]) if person.get("tz") else zone_of(entry) if zone_of else None
            found = EmailRecipient(person["email"], zone)
        key = found.address.lower()  # listed twice (as a person and as an address): once, with a zone if either has
        if key not in recipients or (recipients[key].zone is None and found.zone is not None):
            recipients[key] = found
    return list(recipients.values())

"""Who gets what: a deal's alert goes to its rep and the rep's manager; each report kind to its channel.

Targets are symbolic in the outbox (`user:rep_7`, `channel:#cro-vp`) and become Slack ids only at delivery, so a
users mapping fixed after an alert was queued still reaches the right person.
"""

from __future__ import annotations

from salesintel.alerts.settings import RoutingSettings


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

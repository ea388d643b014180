"""Who may see what and act on what: the domain's rules, used by every surface (Slack, App Home, terminal).

A viewer is a person (a rep or manager id from `alerts.routing.users`) or an executive; who a Slack user is, is
`bot.people`'s concern. A rep sees their own deals, a manager their team's, an executive everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from salesintel.alerts.routing import managers_of
from salesintel.alerts.settings import RoutingSettings
from salesintel.engine.segments import SegmentResult
from salesintel.engine.store import Alert

EVERYONE = "everyone"
"""A visibility setting under which everyone sees every deal."""


@dataclass(frozen=True)
class Viewer:
    slack_id: str
    person: str | None
    """The rep or manager id this Slack user is, if known."""
    executive: bool


def reps_in_scope(viewer: Viewer, routing: RoutingSettings) -> set[str] | None:
    """The reps whose deals this viewer's pipeline covers; None means everyone (executives)."""
    if viewer.executive:
        return None
    if viewer.person is None:
        return set()
    team = {rep for rep in routing.users if viewer.person in managers_of(rep, routing)}
    return team | {viewer.person}


def may_see_any_deal(viewer: Viewer, visibility: str) -> bool:
    """Someone the configuration does not know sees nothing about deals or reps (unless everyone sees everything)."""
    return visibility == EVERYONE or viewer.executive or viewer.person is not None


def can_see_deal(viewer: Viewer, rep_id: str, routing: RoutingSettings, visibility: str) -> bool:
    """`visibility`: "everyone", or "owner_and_managers" (the owner, their managers and executives)."""
    if visibility == EVERYONE:
        return True
    scope = reps_in_scope(viewer, routing)
    return scope is None or rep_id in scope


def can_act_on_alert(viewer: Viewer, alert: Alert, routing: RoutingSettings) -> bool:
    """The alert's recipients and their managers (and executives) may acknowledge or snooze it."""
    return can_act_for(viewer, alert.recipients, routing)


def can_act_for(viewer: Viewer, targets: tuple[str, ...] | list[str], routing: RoutingSettings) -> bool:
    """`can_act_on_alert` from an alert's recipients alone (when only those were read)."""
    if viewer.executive:
        return True
    if viewer.person is None:
        return False
    recipients = [target.split(":", 1)[1] for target in targets if target.startswith("user:")]
    allowed = set(recipients) | {m for r in recipients for m in managers_of(r, routing)}
    return viewer.person in allowed


REP_FIELD = "sales_rep_id"


def hides_rep_figures(viewer: Viewer, routing: RoutingSettings, visibility: str) -> Callable[[SegmentResult], bool]:
    """Which segment findings this viewer may not see: a rep's win rate is for that rep, their managers and
    executives (everyone's, when everyone sees every deal)."""
    if visibility == EVERYONE or viewer.executive:
        return lambda segment: False
    scope = reps_in_scope(viewer, routing) or set()
    return lambda segment: segment.field == REP_FIELD and segment.value not in scope

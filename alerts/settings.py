"""Typed settings of the alert engine (validated once from config.yaml, see `bot/config.py`)."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator, model_validator

from salesintel.engine.settings import FrozenSettings, RiskRuleSettings

REPORT_KINDS = ("daily", "weekly", "monthly")


class TuningSettings(FrozenSettings):
    """Feedback tunes the real-time rule's threshold (the one "at risk" threshold), within bounds, never silently:
    see `alerts.tuning`."""

    enabled: bool = True
    window_days: int = Field(30, ge=1)
    """Answers counted: those given within this many days, and since the last change."""
    min_answers: int = Field(20, ge=5)
    """No change on fewer answers than this."""
    step: float = Field(0.05, gt=0, lt=0.5)
    """One change moves the threshold by this much (risk points)."""
    min_threshold: float = Field(0.3, gt=0, lt=1)
    max_threshold: float = Field(0.95, gt=0, lt=1)
    max_offset: float = Field(0.15, gt=0, lt=1)
    """The tuned threshold stays within this much of the threshold the rule itself chooses (configured or auto)."""
    owner: str | None = None
    """A person under `alerts.routing.users` told of every change in a direct message (the ops channel always is)."""


class RealtimeRuleSettings(FrozenSettings):
    """High-value deal at risk: amount above `min_amount` and "at risk" by the one risk rule (see `risk_rule`)."""

    min_amount: float = Field(50_000, ge=0)
    min_risk: float | Literal["auto"] = "auto"
    """Risk threshold, or `auto` (chosen from the holdout for `target_share` of deals flagged and `min_lift`)."""
    target_share: float = Field(0.10, gt=0, lt=1)
    min_lift: float = Field(1.15, ge=1)
    risk_step: float = Field(0.10, gt=0, lt=1)
    """Within an episode, alert again when risk has risen by this much since the last alert."""
    repeat_after_days: int = Field(7, ge=1)
    """Within an episode, alert again when this long has passed since the last alert."""
    tuning: TuningSettings = TuningSettings()

    @property
    def risk_rule(self) -> RiskRuleSettings:
        return RiskRuleSettings(
            min_risk=self.min_risk,
            target_share=self.target_share,
            min_lift=self.min_lift,
            neighbour_step=self.tuning.step,
            apply_tuning=self.tuning.enabled,
        )


class StalledRuleSettings(FrozenSettings):
    """The brief's stalled-deal rule; needs the deal's stage at the as-of date (a live snapshot)."""

    late_stages: list[str] = ["Proposal", "Negotiation", "Closed"]
    """Stages that count as "Proposal or later"."""
    proposal_by_day: int = Field(60, ge=1)
    """A deal this many days old (or older) that is not yet at a late stage is stalled."""
    demo_max_days: int = Field(30, ge=1)
    """A deal in Demo longer than this (measured across snapshots) is stalled."""


class CronSettings(FrozenSettings):
    """Fields of an APScheduler CronTrigger (named, so no crontab weekday-numbering surprise)."""

    second: str = "0"
    """Rarely wanted (reports go out on the minute); tests use it to cross fire times within seconds."""
    minute: str = "0"
    hour: str = "*"
    day: str = "*"
    month: str = "*"
    day_of_week: str = "*"


class ScheduleSettings(FrozenSettings):
    refresh: CronSettings = CronSettings(minute="*/30")
    daily: CronSettings = CronSettings(hour="8")
    weekly: CronSettings = CronSettings(hour="9", day_of_week="mon")
    monthly: CronSettings = CronSettings(hour="9", day="1")
    tuning: CronSettings = CronSettings(hour="7", day_of_week="mon")
    """When feedback may tune the real-time threshold (`alerts.realtime.tuning`)."""
    misfire_grace_minutes: int = Field(120, ge=0)
    """A report missed while the service was down is sent once on return if it is at most this late; else skipped."""
    watch_folder: str | None = None
    """New CSV files appearing here are ingested and trigger a refresh."""
    tick_seconds: int = Field(30, ge=1)
    lease_seconds: int = Field(90, ge=2)
    """The scheduler/delivery lease: renewed every tick and heartbeat (a third of this); a replica takes over this
    long after the holder died."""


def _report_kinds_only(digests: dict[str, list[str]]) -> dict[str, list[str]]:
    unknown = [kind for kind in digests if kind not in REPORT_KINDS]
    if unknown:
        raise ValueError(f"digests: use {', '.join(REPORT_KINDS)} (got {', '.join(unknown)})")
    return digests


DigestLists = Annotated[dict[str, list[str]], AfterValidator(_report_kinds_only)]
"""Report kind → who gets it as a digest of their own (email or Slack DM); only report kinds are keys."""


class RoutingSettings(FrozenSettings):
    channels: dict[str, str] = {
        "daily": "#sales-managers",
        "weekly": "#cro-vp",
        "monthly": "#executive",
        "ops": "#salesintel-ops",
    }
    users: dict[str, dict[str, str]] = Field(default_factory=dict)
    """rep id → {slack: U…, email: …, manager: manager id}; a manager id is a key here too."""
    digests: DigestLists = Field(default_factory=dict)
    """Report kind → managers under `users` who also get that report by direct message in Slack, at the report's
    hour in their own time zone (`tz:`, else Slack's `users.info`): the channel's report, in their DMs at 08:00
    their time rather than the channel's hour."""

    @field_validator("channels")
    @classmethod
    def _every_kind_has_a_channel(cls, channels: dict[str, str]) -> dict[str, str]:
        missing = [kind for kind in (*REPORT_KINDS, "ops") if kind not in channels]
        if missing:
            raise ValueError(f"no channel for {', '.join(missing)}")
        return channels


class DeliverySettings(FrozenSettings):
    channel_pace_seconds: float = Field(1.0, ge=0)
    """At most one message per this many seconds per channel (Slack's chat.postMessage guidance)."""
    max_attempts: int = Field(8, ge=1)
    """Transient failures are retried with exponential backoff this many times, then reported as failed."""
    backoff_seconds: float = Field(2.0, gt=0)
    max_backoff_seconds: float = Field(300.0, gt=0)
    max_retry_after_seconds: float = Field(300.0, gt=0)
    """Slack's Retry-After is honoured (in seconds or as a date) up to this; a longer one is capped and logged."""
    jitter: float = Field(0.2, ge=0, le=1)
    """Each retry waits up to this share longer, at random, so processes and channels do not retry in step."""
    request_timeout_seconds: float = Field(5.0, gt=0)
    """One Slack call's deadline: a hung call fails (and is retried later) instead of holding up every message."""
    claim_seconds: float = Field(120.0, gt=0)
    """How long a message claimed for sending stays claimed (a claim is released when the send ends)."""


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class QuietHoursSettings(FrozenSettings):
    """When a person may get a real-time direct message: working hours in their own time zone (Slack's `users.info`,
    or `tz:` under `alerts.routing.users`, else the service's `timezone`). A message due outside them waits for the
    start of the recipient's next working hour; channel reports are not held."""

    enabled: bool = False
    outside: Literal["wait", "digest"] = "wait"
    """A real-time alert due outside working hours waits for the next working hour, or (`digest`) joins the next
    daily digest's "held over" list instead (a resolution always waits: it belongs in the alert's thread)."""
    start_hour: int = Field(8, ge=0, le=23)
    end_hour: int = Field(18, ge=1, le=24)
    days: list[str] = ["mon", "tue", "wed", "thu", "fri"]

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        unknown = [day for day in days if day not in WEEKDAYS]
        if unknown or not days:
            raise ValueError(f"days: use {', '.join(WEEKDAYS)} (got {', '.join(unknown) or 'none'})")
        return days


class SmtpSettings(FrozenSettings):
    """The mail server digests go through. The password never lives here: SALESINTEL_SMTP_PASSWORD."""

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    """Upgrade the connection with STARTTLS before anything is sent (refused if the server does not offer it)."""
    username: str | None = None
    """Log in (after STARTTLS) as this user, with SALESINTEL_SMTP_PASSWORD."""
    ca_file: str | None = None
    """A CA bundle to verify the server's certificate against (a private CA); the system's otherwise."""
    timeout_seconds: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> SmtpSettings:
        if self.username and not self.starttls:
            raise ValueError("username without starttls would send the password unencrypted: set starttls: true")
        return self


class EmailSettings(FrozenSettings):
    """Daily, weekly and monthly digests also by email, each to its audience: the same report as the channel gets,
    as HTML with a plain-text part and the charts inline, at the report's scheduled hour in each recipient's own
    time zone (`tz:` under `alerts.routing.users`, else the service's)."""

    enabled: bool = False
    sender: str = Field("salesintel <salesintel@localhost>", alias="from")
    """The From: header."""
    smtp: SmtpSettings = SmtpSettings()
    digests: DigestLists = Field(default_factory=dict)
    """Report kind (daily: sales managers, weekly: CRO and VPs, monthly: executives) → recipients: addresses, or
    people under `alerts.routing.users` with an `email:` (and optionally `tz:`)."""


class AlertsSettings(FrozenSettings):
    realtime: RealtimeRuleSettings = RealtimeRuleSettings()
    stalled: StalledRuleSettings = StalledRuleSettings()
    quiet_hours: QuietHoursSettings = QuietHoursSettings()
    stale_after_hours: float = Field(24, gt=0)
    drift_psi_threshold: float = Field(0.25, gt=0)
    skill_decay_threshold: float = Field(0.05, gt=0)
    """Ops alert when AUC on deals closed since training is this much below the holdout AUC."""
    daily_cap_per_recipient: int = Field(5, ge=1)
    control_share: float = Field(0.10, ge=0, lt=1)
    """Share of eligible deals held back from real-time alerts (stable hash of the deal id)."""
    top_deals: int = Field(5, ge=1)
    schedule: ScheduleSettings = ScheduleSettings()
    routing: RoutingSettings = RoutingSettings()
    delivery: DeliverySettings = DeliverySettings()
    email: EmailSettings = EmailSettings()

    @model_validator(mode="after")
    def _people_are_known(self) -> AlertsSettings:
        """Every digest recipient that is not an address is a person with an email, and every `tz:` is a zone."""
        problems = []
        for person, entry in self.routing.users.items():
            if entry.get("tz"):
                try:
                    ZoneInfo(entry["tz"])
                except (ZoneInfoNotFoundError, ValueError):
                    problems.append(f"routing.users.{person}.tz: unknown time zone {entry['tz']!r}")
        owner = self.realtime.tuning.owner
        if owner and owner not in self.routing.users:
            problems.append(f"realtime.tuning.owner: {owner!r} is not a person under routing.users")
        managers = {entry.get("manager") for entry in self.routing.users.values()}
        for kind, entries in self.email.digests.items():
            for entry in entries:
                if "@" in entry:
                    continue
                if not self.routing.users.get(entry, {}).get("email"):
                    problems.append(
                        f"email.digests.{kind}: {entry!r} is neither an address nor a person under routing.users "
                        "with an email"
                    )
                elif entry not in managers:
                    problems.append(
                        f"email.digests.{kind}: {entry!r} manages nobody under routing.users; a digest is its "
                        "channel's report, about every team: list managers, or the address of someone who reads "
                        "that channel"
                    )
        for kind, people in self.routing.digests.items():
            for person in people:
                entry = self.routing.users.get(person)
                if entry is None or not (entry.get("slack") or entry.get("email")):
                    problems.append(
                        f"routing.digests.{kind}: {person!r} is not a person under routing.users with a slack id or "
                        "an email (to find them in Slack)"
                    )
                elif person not in managers:
                    problems.append(
                        f"routing.digests.{kind}: {person!r} manages nobody under routing.users; a digest is its "
                        "channel's report, about every team: list managers"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

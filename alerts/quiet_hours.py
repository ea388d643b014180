"""When a direct message may reach a person: within their working hours, in their own time zone.

Pure: the moment and the zone come in. Wall-clock arithmetic happens in the recipient's zone (so 08:00 is 08:00 on
either side of a daylight-saving change) and the answer is an aware datetime.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from salesintel.alerts.settings import WEEKDAYS, QuietHoursSettings


def next_working_moment(now: datetime, zone: ZoneInfo, hours: QuietHoursSettings) -> datetime | None:
    """None when `now` is within the recipient's working hours; else the start of their next working hour."""
    local = now.astimezone(zone)
    if _working(local, hours):
        return None
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        if WEEKDAYS[day.weekday()] not in hours.days:
            continue
        start = datetime.combine(day, time(hours.start_hour), zone)
        if start > local:
            return start
    raise ValueError("no working day in a week")  # the settings guarantee at least one day


def _working(local: datetime, hours: QuietHoursSettings) -> bool:
    return WEEKDAYS[local.weekday()] in hours.days and hours.start_hour <= local.hour < hours.end_hour

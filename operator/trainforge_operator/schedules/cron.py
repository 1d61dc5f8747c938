"""When a cron schedule fires, read in its time zone (croniter + zoneinfo), and what is due now.

Pure functions of (expression, zone, times). Times in and out are timezone-aware; croniter walks
the wall clock of the schedule's zone, so `0 3 * * *` in Europe/Berlin is 03:00 local on both
sides of a DST change (and a 02:30 job on the spring-forward day runs once, as cron does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter

CRON_ERRORS = (CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, ValueError)


def zone_problem(name: str) -> str | None:
    """Why `name` is not a time zone zoneinfo knows, or None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return (
            f"spec.timeZone: unknown time zone {name!r}; use an IANA name such as UTC, "
            "Europe/Berlin or America/New_York"
        )
    return None


def cron_problem(expression: str) -> str | None:
    """Why croniter cannot read `expression`, or None."""
    try:
        croniter(expression)
    except CRON_ERRORS as err:
        return (
            f"spec.schedule: {expression!r} is not a valid cron expression ({err}); use five "
            "fields 'minute hour day-of-month month day-of-week', for example '0 3 * * *'"
        )
    return None


def next_after(expression: str, zone: str, after: dt.datetime) -> dt.datetime:
    """The first fire time strictly after `after`, as a UTC datetime."""
    local = after.astimezone(ZoneInfo(zone))
    fire: dt.datetime = croniter(expression, local).get_next(dt.datetime)
    return fire.astimezone(dt.UTC)


def latest_at_or_before(expression: str, zone: str, now: dt.datetime) -> dt.datetime:
    """The newest fire time <= now, as a UTC datetime."""
    local = (now + dt.timedelta(microseconds=1)).astimezone(ZoneInfo(zone))
    fire: dt.datetime = croniter(expression, local).get_prev(dt.datetime)
    return fire.astimezone(dt.UTC)


@dataclass(frozen=True)
class Due:
    """The cron time to act on now: run it, or skip it when it is past the starting deadline.

    `missed` counts the fire times after `since` that come before `time` and are dropped: after
    downtime only the newest one is caught up, never a flood.
    """

    time: dt.datetime
    too_late: bool
    missed: int


def due(
    expression: str,
    zone: str,
    since: dt.datetime,
    now: dt.datetime,
    deadline_seconds: int | None,
    count_limit: int = 100,
) -> Due | None:
    """The newest fire time in (since, now], or None when nothing fired since `since`."""
    latest = latest_at_or_before(expression, zone, now)
    if latest <= since:
        return None
    missed, t = 0, next_after(expression, zone, since)
    while t < latest and missed < count_limit:
        missed, t = missed + 1, next_after(expression, zone, t)
    late = deadline_seconds is not None and (now - latest).total_seconds() > deadline_seconds
    return Due(time=latest, too_late=late, missed=missed)

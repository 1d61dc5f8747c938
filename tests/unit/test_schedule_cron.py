"""Next-run computation (croniter in the schedule's time zone, across a DST change) and the
catch-up rule after downtime: at most the newest missed time, and none past the deadline."""

from __future__ import annotations

import datetime as dt

import pytest

from trainforge_operator.schedules import cron

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("* * * * *", "UTC", "2026-03-01T10:00:30+00:00", "2026-03-01T10:01:00+00:00"),
        ("0 3 * * *", "UTC", "2026-03-01T03:00:00+00:00", "2026-03-02T03:00:00+00:00"),
        # 03:00 in Berlin is 02:00 UTC in winter (CET, +01:00) ...
        ("0 3 * * *", "Europe/Berlin", "2026-03-27T12:00:00+00:00", "2026-03-28T02:00:00+00:00"),
        # ... and 01:00 UTC after the spring-forward change on 2026-03-29 (CEST, +02:00).
        ("0 3 * * *", "Europe/Berlin", "2026-03-28T12:00:00+00:00", "2026-03-29T01:00:00+00:00"),
        ("0 3 * * *", "Europe/Berlin", "2026-03-29T12:00:00+00:00", "2026-03-30T01:00:00+00:00"),
        # Autumn back in New York (2026-11-01): 09:00 local is 13:00 UTC, then 14:00 UTC.
        ("0 9 * * *", "America/New_York", "2026-10-31T12:00:00+00:00", "2026-10-31T13:00:00+00:00"),
        ("0 9 * * *", "America/New_York", "2026-10-31T14:00:00+00:00", "2026-11-01T14:00:00+00:00"),
        ("@hourly", "Asia/Kolkata", "2026-05-01T10:10:00+00:00", "2026-05-01T10:30:00+00:00"),
    ],
)
def test_next_run_in_the_schedules_zone(
    expression: str, zone: str, after: str, expected: str
) -> None:
    assert cron.next_after(expression, zone, at(after)) == at(expected)


def test_latest_fire_time_includes_now() -> None:
    now = at("2026-03-01T10:05:00+00:00")
    assert cron.latest_at_or_before("*/5 * * * *", "UTC", now) == now


def test_nothing_due_before_the_next_fire_time() -> None:
    since = at("2026-03-01T10:00:00+00:00")
    assert cron.due("*/5 * * * *", "UTC", since, at("2026-03-01T10:04:59+00:00"), None) is None


def test_downtime_catches_up_only_the_newest_missed_time() -> None:
    since = at("2026-03-01T10:00:00+00:00")
    due = cron.due("* * * * *", "UTC", since, at("2026-03-01T10:30:20+00:00"), 60)
    assert due == cron.Due(time=at("2026-03-01T10:30:00+00:00"), too_late=False, missed=29)


def test_a_fire_time_past_the_starting_deadline_is_skipped() -> None:
    since = at("2026-03-01T03:00:00+00:00")
    due = cron.due("0 * * * *", "UTC", since, at("2026-03-01T05:10:00+00:00"), 300)
    assert due == cron.Due(time=at("2026-03-01T05:00:00+00:00"), too_late=True, missed=1)


def test_without_a_deadline_a_late_time_still_runs_once() -> None:
    since = at("2026-03-01T03:00:00+00:00")
    due = cron.due("0 * * * *", "UTC", since, at("2026-03-01T05:59:00+00:00"), None)
    assert due is not None
    assert not due.too_late


@pytest.mark.parametrize("expression", ["61 * * * *", "* * * * FOO", "0 0 31 2 *x"])
def test_croniter_rejections_say_what_to_write(expression: str) -> None:
    problem = cron.cron_problem(expression)
    assert problem is not None
    assert problem.startswith("spec.schedule:")
    assert "'0 3 * * *'" in problem


def test_unknown_zone_is_named() -> None:
    problem = cron.zone_problem("Mars/Olympus_Mons")
    assert problem is not None
    assert "Mars/Olympus_Mons" in problem
    assert cron.zone_problem("Europe/Berlin") is None

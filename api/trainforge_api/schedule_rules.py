"""Every cross-field rule of a TrainingSchedule, stated once: a Python check beside its CEL twin.

The same design as `rules.py` (TrainingJob): the API server runs the CEL at `kubectl apply`, the
operator runs `schedule_problems`, and tests/unit/test_schedule_rules.py proves that both halves
of every row agree. CEL can only check shapes; whether croniter parses the expression and whether
zoneinfo knows the zone is checked by the operator (an `InvalidSpec` condition).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from trainforge_api.trainingschedule import MAX_NAME, TrainingScheduleSpec

Scope = Literal["metadata", "spec"]

# Five fields of cron characters, or a macro. Names (MON, JAN), ranges, steps, lists, L W # ?.
CRON_SHAPE = (
    "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    "([0-9A-Za-z*/,?#-]+ +){4}[0-9A-Za-z*/,?#-]+)$"
)
# An IANA zone name: UTC, Europe/Berlin, America/Argentina/Buenos_Aires, Etc/GMT+5.
ZONE_SHAPE = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
_DNS1035 = "^[a-z]([-a-z0-9]*[a-z0-9])?$"


@dataclass(frozen=True)
class ScheduleRule:
    """One rule: `cel` with `self` at `scope` (the object's root for metadata rules); `holds` is
    the same rule in Python on the schedule's name and spec."""

    scope: Scope
    cel: str
    message: str
    holds: Callable[[str | None, TrainingScheduleSpec], bool]
    reason: str = "FieldValueInvalid"

    def crd(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message, "reason": self.reason}


def _matches(pattern: str, value: str) -> bool:
    return re.search(pattern, value) is not None


def _not_negative(
    field: str, get: Callable[[TrainingScheduleSpec], float | None], zero: str = "0"
) -> ScheduleRule:
    """`field` (a camelCase path under spec) is absent or >= 0."""
    top = field.split(".")[0]

    def holds(_: str | None, spec: TrainingScheduleSpec) -> bool:
        value = get(spec)
        return value is None or value >= 0

    return ScheduleRule(
        "spec",
        f"!has(self.{top}) || self.{field} >= {zero}",
        f"spec.{field} must not be negative; use 0 or a positive number",
        holds,
    )


SPEC_RULES: list[ScheduleRule] = [
    ScheduleRule(
        "spec",
        "has(self.schedule) || has(self.newData)",
        "spec: set schedule (a cron expression), newData (retrain when the data changes), or both",
        lambda _, spec: spec.schedule is not None or spec.new_data is not None,
    ),
    ScheduleRule(
        "spec",
        f"!has(self.schedule) || self.schedule.matches('{CRON_SHAPE}')",
        "spec.schedule is not a cron expression: use five fields 'minute hour day-of-month "
        "month day-of-week' (for example '0 3 * * *') or a macro such as @daily",
        lambda _, spec: spec.schedule is None or _matches(CRON_SHAPE, spec.schedule),
    ),
    ScheduleRule(
        "spec",
        f"self.timeZone.matches('{ZONE_SHAPE}')",
        "spec.timeZone is not a time zone name: use an IANA name such as UTC or Europe/Berlin",
        lambda _, spec: _matches(ZONE_SHAPE, spec.time_zone),
    ),
    _not_negative("startingDeadlineSeconds", lambda s: s.starting_deadline_seconds),
    _not_negative("successfulRunsHistoryLimit", lambda s: s.successful_runs_history_limit),
    _not_negative("failedRunsHistoryLimit", lambda s: s.failed_runs_history_limit),
    _not_negative(
        "newData.minIntervalSeconds",
        lambda s: None if s.new_data is None else s.new_data.min_interval_seconds,
    ),
    _not_negative("promotion.margin", lambda s: s.promotion.margin, zero="0.0"),
    _not_negative("promotion.championHistoryLimit", lambda s: s.promotion.champion_history_limit),
]

METADATA_RULES: list[ScheduleRule] = [
    ScheduleRule(
        "metadata",
        f"self.metadata.name.matches('{_DNS1035}') && size(self.metadata.name) <= {MAX_NAME}",
        f"metadata.name must be a DNS-1035 label of at most {MAX_NAME} characters (runs are "
        "named '<name>-<unix minute>' and their pods '<run>-worker-<index>'); choose a shorter "
        "name",
        lambda name, _: name is None or (len(name) <= MAX_NAME and _matches(_DNS1035, name)),
    ),
]

ALL_RULES: list[ScheduleRule] = [*METADATA_RULES, *SPEC_RULES]


def schedule_problems(spec: TrainingScheduleSpec, name: str | None = None) -> list[str]:
    """Every rule a schema-valid schedule breaks, each phrased as what to fix."""
    return [rule.message for rule in ALL_RULES if not rule.holds(name, spec)]

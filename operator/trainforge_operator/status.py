"""Status helpers (pure): the status as stored, conditions, worker counts, progress parsing and
time formatting."""

from __future__ import annotations

import datetime as dt
from typing import Any

from trainforge_api.trainingjob import (
    METRIC_HISTORY_LIMIT,
    Condition,
    Finding,
    MetricPoint,
    Progress,
    TrainingJobStatus,
    WorkerCounts,
)

Obj = dict[str, Any]


def status_dict(status: TrainingJobStatus) -> Obj:
    """The status as stored: camelCase, without unset (None) fields."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def parse_status(raw: Obj | None) -> TrainingJobStatus:
    """Lenient: unknown keys (e.g. written by other tools) are ignored."""
    known = {f.alias or n for n, f in TrainingJobStatus.model_fields.items()}
    try:
        return TrainingJobStatus.model_validate(
            {k: v for k, v in (raw or {}).items() if k in known}
        )
    except ValueError:
        return TrainingJobStatus()


def iso(t: dt.datetime) -> str:
    """RFC 3339 UTC with seconds precision, the form Kubernetes uses."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float | None) -> str | None:
    """'1h02m', '3m20s', '45s': short enough for a printer column."""
    if seconds is None or seconds < 0:
        return None
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """Upsert a condition; lastTransitionTime changes only when the status flips."""
    value = "True" if status else "False"
    previous = next((c for c in conditions if c.type == type_), None)
    since: str | None = iso(now)
    if previous is not None and previous.status == value:
        since = previous.last_transition_time
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]


def condition_true(conditions: list[Condition], type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in conditions)


def count_workers(pods: list[Obj]) -> WorkerCounts:
    counts = WorkerCounts()
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase == "Running":
            counts.running += 1
        elif phase == "Succeeded":
            counts.succeeded += 1
        elif phase == "Failed":
            counts.failed += 1
        else:
            counts.pending += 1
    return counts


def _float_metrics(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    out: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            out[str(key)] = float(value)
    return out


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _num_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_progress(
    raw: Obj, previous: Progress | None, now: dt.datetime
) -> tuple[Progress, list[Finding]]:
    """Rank 0's /progress JSON into status.progress, tracking when the step last advanced."""
    step = _int_or_none(raw.get("step"))
    prev_step = previous.step if previous else None
    advanced = step is not None and (prev_step is None or step != prev_step)
    if advanced or previous is None:
        last_advance = iso(now)
    else:
        last_advance = previous.last_advance_time or iso(now)
    eta_seconds = _num_or_none(raw.get("etaSeconds"))
    progress = Progress(
        step=step,
        total_steps=_int_or_none(raw.get("totalSteps")),
        percent=_num_or_none(raw.get("percent")),
        eta_seconds=eta_seconds,
        eta=human_duration(eta_seconds),
        metrics=_float_metrics(raw.get("metrics")),
        resumed_from_step=_int_or_none(raw.get("resumedFromStep")),
        phase=str(raw["phase"]) if isinstance(raw.get("phase"), str) else None,
        updated_at=str(raw["updatedAt"]) if raw.get("updatedAt") is not None else None,
        last_advance_time=last_advance,
    )
    findings = [
        Finding.model_validate(
            {k: f.get(k) for k in ("rule", "step", "message", "action") if f.get(k) is not None}
        )
        for f in raw.get("findings") or []
        if isinstance(f, dict)
    ]
    return progress, findings


def record_history(
    history: list[MetricPoint], progress: Progress, limit: int = METRIC_HISTORY_LIMIT
) -> list[MetricPoint]:
    """Append the polled step's metrics when the step advanced. When full, every second point
    after the first is dropped, so the history stays bounded and still spans the whole run (a
    sweep rebuilds its early-stopping study from it)."""
    if progress.step is None or not progress.metrics:
        return history
    if history and progress.step <= history[-1].step:
        return history
    out = [*history, MetricPoint(step=progress.step, metrics=dict(progress.metrics))]
    while len(out) > limit:
        out = [out[0], *out[2::2]] if len(out) > 2 else out[-limit:]
    return out

"""A sweep's trials as the engine sees them, read from the trials' TrainingJob objects.

Everything a rebuilt study needs is on the TrainingJob: the sampled parameters in
spec.hyperparameters (and the trial-number label), the intermediate values in
status.metricHistory and status.progress, the final value in status.results, and the sampler's
and pruner's per-trial bookkeeping (Optuna system attributes) in the `trainforge.io/trial-attrs`
annotation. So the study is rebuilt from the cluster alone, on every pass.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from trainforge_api.trainingjob import STOP_ANNOTATION
from trainforge_api.trainingsweep import Objective, TrialState

LABEL_SWEEP = "trainforge.io/sweep-name"
LABEL_TRIAL = "trainforge.io/trial-number"
ATTRS_ANNOTATION = "trainforge.io/trial-attrs"
PRUNED = "Pruned"  # the stop reason of a pruned trial
SWEEP_ENDED = "SweepEnded"  # the stop reason of a trial still running when its sweep ended

Obj = dict[str, Any]
_RUNNING_PHASES = {"Running", "Restarting"}


@dataclass(frozen=True)
class TrialRecord:
    """One trial: its number, sampled params, state, values and Optuna bookkeeping."""

    number: int
    name: str
    params: dict[str, Any]
    state: TrialState
    values: list[float] | None = None  # final value of every objective (None: not known)
    intermediate: dict[int, float] = field(default_factory=dict)  # step -> intermediate value
    system_attrs: dict[str, Any] = field(default_factory=dict)
    artifacts_uri: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("Succeeded", "Failed", "Pruned", "Stopped")

    @property
    def active(self) -> bool:
        return self.state in ("Pending", "Running")

    @property
    def last_step(self) -> int | None:
        return max(self.intermediate) if self.intermediate else None


def trial_name(sweep: str, number: int) -> str:
    """The trial's TrainingJob: `<sweep>-<k>`, the same whoever creates it and how often."""
    return f"{sweep}-{number}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _intermediate(status: Obj, metric: str) -> dict[int, float]:
    points: dict[int, float] = {}
    history = status.get("metricHistory") or []
    progress = status.get("progress") or {}
    for point in [*history, {"step": progress.get("step"), "metrics": progress.get("metrics")}]:
        step, value = point.get("step"), _number((point.get("metrics") or {}).get(metric))
        if isinstance(step, int) and value is not None:
            points[step] = value
    return points


def _final(status: Obj, metric: str, intermediate: dict[int, float]) -> float | None:
    value = _number((status.get("results") or {}).get(metric))
    if value is None:
        value = _number(((status.get("progress") or {}).get("metrics") or {}).get(metric))
    return value


def _state(body: Obj) -> TrialState:
    annotations = body["metadata"].get("annotations") or {}
    phase = (body.get("status") or {}).get("phase")
    reason = annotations.get(STOP_ANNOTATION)
    if reason == SWEEP_ENDED:
        return "Stopped"
    if reason or phase == "Stopped":
        return "Pruned"
    if phase == "Succeeded":
        return "Succeeded"
    if phase == "Failed":
        return "Failed"
    return "Running" if phase in _RUNNING_PHASES else "Pending"


def _attrs(body: Obj) -> dict[str, Any]:
    raw = (body["metadata"].get("annotations") or {}).get(ATTRS_ANNOTATION)
    try:
        attrs = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return attrs if isinstance(attrs, dict) else {}


def record_from_job(body: Obj, objectives: list[Objective]) -> TrialRecord | None:
    """The trial a TrainingJob of a sweep is, or None when it is not one (no number label)."""
    meta = body["metadata"]
    try:
        number = int((meta.get("labels") or {})[LABEL_TRIAL])
    except (KeyError, ValueError):
        return None
    status = body.get("status") or {}
    intermediate = _intermediate(status, objectives[0].progress_metric)
    state = _state(body)
    finals = [_final(status, o.metric, intermediate) for o in objectives]
    values: list[float] | None = None
    if all(v is not None for v in finals):
        values = [float(v) for v in finals if v is not None]
    if state == "Succeeded" and values is None:
        state = "Failed"  # it ended without reporting the objective: nothing to learn from
    hyper = (body.get("spec") or {}).get("hyperparameters") or {}
    return TrialRecord(
        number=number,
        name=meta["name"],
        params=dict(hyper),
        state=state,
        values=values if state == "Succeeded" else None,
        intermediate=intermediate,
        system_attrs=_attrs(body),
        artifacts_uri=(status.get("artifacts") or {}).get("uri"),
    )

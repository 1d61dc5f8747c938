"""What a sweep's trials add up to: counts, the best trial, the leaderboard or Pareto front, and
whether the sweep is done (maxTrials, goal, no improvement, runtime, grid exhausted, failures)."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from trainforge_api.trainingsweep import TrainingSweepSpec, TrialCounts, TrialSummary
from trainforge_sweep import space
from trainforge_sweep.trials import TrialRecord


@dataclass(frozen=True)
class Ending:
    """Why the sweep ends: phase Completed or Failed, a condition reason and a message."""

    phase: str
    reason: str
    message: str


def counts(spec: TrainingSweepSpec, records: list[TrialRecord]) -> TrialCounts:
    c = TrialCounts(total=len(records))
    for r in records:
        setattr(c, r.state.lower(), getattr(c, r.state.lower()) + 1)
    c.done = f"{finished(c)}/{spec.max_trials}"
    return c


def finished(c: TrialCounts) -> int:
    return c.succeeded + c.failed + c.pruned + c.stopped


def summary(spec: TrainingSweepSpec, r: TrialRecord) -> TrialSummary:
    names = {p.name for p in spec.parameters}
    return TrialSummary(
        name=r.name,
        number=r.number,
        state=r.state,
        params={k: v for k, v in r.params.items() if k in names},
        value=r.values[0] if r.values else None,
        values=list(r.values or []),
        artifacts_uri=r.artifacts_uri,
    )


def _better(spec: TrainingSweepSpec, a: float, b: float) -> bool:
    return a > b if spec.objective.direction == "maximize" else a < b


def ranked(spec: TrainingSweepSpec, records: list[TrialRecord]) -> list[TrialRecord]:
    """Succeeded trials, best first by the primary objective (ties: lower number first)."""
    done = [r for r in records if r.state == "Succeeded" and r.values]
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    return sorted(done, key=lambda r: (sign * (r.values or [0.0])[0], r.number))


def pareto_front(
    study: optuna.Study, index: dict[int, int], records: list[TrialRecord]
) -> list[TrialRecord]:
    """The non-dominated succeeded trials (Optuna's best_trials), in number order."""
    at = {i: n for n, i in index.items()}
    front = {at[t.number] for t in study.best_trials if t.number in at}
    return [r for r in sorted(records, key=lambda r: r.number) if r.number in front]


def leaderboard(
    spec: TrainingSweepSpec,
    records: list[TrialRecord],
    study: optuna.Study | None = None,
    index: dict[int, int] | None = None,
) -> list[TrialSummary]:
    if spec.multi_objective and study is not None and index is not None:
        return [summary(spec, r) for r in pareto_front(study, index, records)]
    return [summary(spec, r) for r in ranked(spec, records)[: spec.leaderboard_size]]


def without_improvement(spec: TrainingSweepSpec, records: list[TrialRecord]) -> int:
    """Finished trials, in number order, since the last one that set a new best."""
    best: float | None = None
    since = 0
    for r in sorted(records, key=lambda r: r.number):
        if not r.finished:
            continue
        value = r.values[0] if r.values else None
        if value is not None and (best is None or _better(spec, value, best)):
            best, since = value, 0
        else:
            since += 1
    return since


def goal_reached(spec: TrainingSweepSpec, records: list[TrialRecord]) -> TrialRecord | None:
    goal = spec.objective.goal
    if goal is None or spec.multi_objective:
        return None
    top = ranked(spec, records)
    if not top or not top[0].values:
        return None
    value = top[0].values[0]
    return top[0] if value == goal or _better(spec, value, goal) else None


def ending(
    spec: TrainingSweepSpec, records: list[TrialRecord], elapsed_seconds: float | None
) -> Ending | None:
    """Why the sweep is over, or None while it goes on. Failures first: a sweep whose trials
    keep failing is Failed even if one of them reached the goal."""
    failed = sum(1 for r in records if r.state == "Failed")
    if failed > spec.max_failed_trials:
        return Ending(
            "Failed",
            "TooManyFailedTrials",
            f"{failed} trials failed (maxFailedTrials {spec.max_failed_trials}); see their "
            "status.lastFailure and fix the template",
        )
    best = goal_reached(spec, records)
    if best is not None:
        return Ending(
            "Completed", "GoalReached", f"{best.name} reached the goal {spec.objective.goal}"
        )
    limit = spec.completion.trials_without_improvement
    if limit is not None and without_improvement(spec, records) >= limit:
        return Ending("Completed", "NoImprovement", f"{limit} finished trials without a new best")
    if (
        spec.max_runtime_seconds is not None
        and elapsed_seconds is not None
        and elapsed_seconds >= spec.max_runtime_seconds
    ):
        return Ending(
            "Completed", "MaxRuntimeReached", f"ran {spec.max_runtime_seconds}s (maxRuntimeSeconds)"
        )
    if any(r.active for r in records):
        return None
    if len(records) >= spec.max_trials:
        return Ending("Completed", "MaxTrialsReached", f"all {spec.max_trials} trials finished")
    if spec.algorithm.type == "grid" and len(records) >= space.grid_size(spec.parameters):
        return Ending("Completed", "GridExhausted", f"all {len(records)} grid points tried")
    return None


def wanted(spec: TrainingSweepSpec, records: list[TrialRecord]) -> int:
    """How many new trials to start now: free parallel slots, within maxTrials (and the grid)."""
    active = sum(1 for r in records if r.active)
    room = spec.max_trials - len(records)
    if spec.algorithm.type == "grid":
        room = min(room, space.grid_size(spec.parameters) - len(records))
    return max(0, min(spec.parallel_trials - active, room))

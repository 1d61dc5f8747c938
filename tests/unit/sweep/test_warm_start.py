"""spec.warmStartFrom: the finished trials of earlier sweeps seed the rebuilt study (first, and
only those that fit this search space); they are never counted, ranked or pruned as this
sweep's own."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import optuna

from trainforge_operator.sweepdecision import SweepObserved, decide_sweep
from trainforge_sweep import study
from trainforge_sweep.trials import TrialRecord

from .test_decision import T0, finish, passes, sweep_body
from .test_engine import done, history, spec_of

TPE = {"type": "tpe", "seed": 3, "settings": {"n_startup_trials": 2}}


def earlier(n: int) -> list[TrialRecord]:
    """n finished trials of an earlier sweep `a` (numbered 0.. in their own sweep)."""
    return [dataclasses.replace(r, name=f"a-{r.number}") for r in history(spec_of(), n)]


def test_warm_trials_come_first_and_only_finished_ones_of_this_space() -> None:
    spec = spec_of(algorithm=TPE)
    warm = earlier(3)
    failed = TrialRecord(3, "a-3", warm[0].params, "Failed")
    other_space = done(4, {"lr": 0.01}, 0.99, {})
    own = done(0, warm[1].params, 0.5, {10: 0.25})
    built, index = study.rebuild(spec, "b", [own], [*warm, failed, other_space])
    states = [t.state for t in built.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4
    assert [t.values for t in built.trials[:3]] == [r.values for r in warm]
    assert index == {0: 3}  # own trial 0 is the study's 4th trial, not warm trial a-0
    # Own trial 0 keeps its own intermediate values although warm trial a-0 is also number 0.
    assert built.trials[3].intermediate_values == {10: 0.25}
    assert built.trials[0].intermediate_values == dict(warm[0].intermediate)


def test_warm_trials_change_what_tpe_suggests_first() -> None:
    spec = spec_of(algorithm=TPE)
    cold = study.suggest(study.rebuild(spec, "b", [])[0], spec, [0])
    seeded = study.suggest(study.rebuild(spec, "b", [], earlier(4))[0], spec, [0])
    again = study.suggest(study.rebuild(spec, "b", [], earlier(4))[0], spec, [0])
    assert seeded == again  # deterministic
    assert seeded != cold  # past the 2 startup trials: TPE, not random, from the first trial


def as_jobs(records: list[TrialRecord], sweep: str) -> list[dict[str, Any]]:
    """The earlier sweep's trials as the TrainingJobs the operator lists."""
    jobs, _ = passes(1, maxTrials=len(records), parallelTrials=len(records))
    out = []
    for job, r in zip(jobs, records, strict=True):
        job = json.loads(json.dumps(job))
        job["metadata"]["name"] = r.name
        job["metadata"]["labels"]["trainforge.io/sweep-name"] = sweep
        job["spec"]["hyperparameters"].update(r.params)
        out.append(finish(job, (r.values or [0.0])[0], dict(r.intermediate)))
    return out


def test_the_decision_seeds_from_warm_trials_but_reports_only_its_own() -> None:
    body = sweep_body(algorithm=TPE, warmStartFrom=["a"])
    warm = as_jobs(earlier(4), "a")
    cold = decide_sweep(SweepObserved(body, [], [], T0))
    seeded = decide_sweep(SweepObserved(body, [], warm, T0))
    assert [t["metadata"]["name"] for t in seeded.create] == ["hp-0", "hp-1"]
    params = [t["spec"]["hyperparameters"] for t in seeded.create]
    assert params != [t["spec"]["hyperparameters"] for t in cold.create]
    assert seeded.status.trials.total == 2
    assert seeded.status.best_trial is None
    assert seeded.status.leaderboard == []

    mine = [finish(seeded.create[0], 0.5, {}), seeded.create[1]]
    later = decide_sweep(SweepObserved(body, mine, warm, T0 + dt.timedelta(seconds=5)))
    assert later.status.best_trial is not None
    assert later.status.best_trial.name == "hp-0"  # warm trials scored higher, but are not ours
    assert [s.name for s in later.status.leaderboard] == ["hp-0"]

"""The sweep engine (trainforge_sweep): search space -> Optuna distributions, a study rebuilt from
trial records (deterministic), pruning verdicts, completion criteria."""

from __future__ import annotations

from typing import Any

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from trainforge_api.trainingsweep import Parameter, TrainingSweepSpec
from trainforge_sweep import outcome, space, study
from trainforge_sweep.trials import TrialRecord, record_from_job

from .conftest import sweep_spec


def spec_of(**changes: Any) -> TrainingSweepSpec:
    return TrainingSweepSpec.model_validate(sweep_spec(**changes))


@pytest.mark.parametrize(
    ("param", "want"),
    [
        (
            {"name": "lr", "type": "float", "low": 1e-4, "high": 0.1, "log": True},
            FloatDistribution(1e-4, 0.1, log=True),
        ),
        (
            {"name": "d", "type": "float", "low": 0, "high": 0.5, "step": 0.1},
            FloatDistribution(0, 0.5, step=0.1),
        ),
        ({"name": "u", "type": "float", "low": -1, "high": 1}, FloatDistribution(-1, 1)),
        (
            {"name": "h", "type": "int", "low": 16, "high": 128, "step": 16},
            IntDistribution(16, 128, step=16),
        ),
        (
            {"name": "b", "type": "int", "low": 8, "high": 512, "log": True},
            IntDistribution(8, 512, log=True),
        ),
        (
            {"name": "o", "type": "categorical", "choices": ["adam", 3, 0.5, True]},
            CategoricalDistribution(["adam", 3, 0.5, True]),
        ),
    ],
)
def test_parameters_map_to_optuna_distributions(param: dict[str, Any], want: Any) -> None:
    assert space.distribution(Parameter.model_validate(param)) == want


def test_grid_enumerates_every_point() -> None:
    params = [
        Parameter.model_validate(
            {"name": "d", "type": "float", "low": 0, "high": 0.3, "step": 0.1}
        ),
        Parameter.model_validate({"name": "h", "type": "int", "low": 1, "high": 5, "step": 2}),
        Parameter.model_validate({"name": "o", "type": "categorical", "choices": ["a", "b"]}),
    ]
    assert space.grid(params) == {"d": [0.0, 0.1, 0.2, 0.3], "h": [1, 3, 5], "o": ["a", "b"]}
    assert space.grid_size(params) == 24


def done(number: int, params: dict[str, Any], value: float, steps: dict[int, float]) -> TrialRecord:
    return TrialRecord(number, f"s-{number}", params, "Succeeded", [value], steps)


def history(spec: TrainingSweepSpec, n: int) -> list[TrialRecord]:
    """n finished trials whose params the study itself suggested (a realistic history)."""
    records: list[TrialRecord] = []
    for k in range(n):
        built, _ = study.rebuild(spec, "s", records)
        (s,) = study.suggest(built, spec, [k])
        value = 1.0 - abs(s.params["lr"] - 0.01)
        records.append(done(k, s.params, value, {10: value / 2}))
    return records


@pytest.mark.parametrize("algorithm", ["random", "tpe", "cmaes", "gp"])
def test_a_rebuilt_study_suggests_the_same_trials(algorithm: str) -> None:
    """Same seed and same children: the same next trials, however often the study is rebuilt."""
    params = sweep_spec()["parameters"][:2] if algorithm in ("cmaes", "gp") else None
    spec = spec_of(
        algorithm={"type": algorithm, "seed": 11}, **({"parameters": params} if params else {})
    )
    records = history(spec, 6)
    first = study.suggest(study.rebuild(spec, "s", records)[0], spec, [6, 7])
    again = study.suggest(study.rebuild(spec, "s", records)[0], spec, [6, 7])
    assert first == again
    assert first[0].params != first[1].params
    other = spec_of(
        algorithm={"type": algorithm, "seed": 12}, **({"parameters": params} if params else {})
    )
    assert study.suggest(study.rebuild(other, "s", records)[0], other, [6]) != first[:1]


def test_a_suggestion_does_not_depend_on_the_pass_that_asked() -> None:
    """Trial 2 asked alone (a later pass) equals trial 2 asked together with trial 3."""
    spec = spec_of(algorithm={"type": "random", "seed": 5})
    built, _ = study.rebuild(spec, "s", [])
    together = study.suggest(built, spec, [2, 3])
    alone = study.suggest(study.rebuild(spec, "s", [])[0], spec, [2])
    assert together[0] == alone[0]


def test_grid_never_repeats_a_point() -> None:
    params = [
        {"name": "d", "type": "float", "low": 0, "high": 0.2, "step": 0.1},
        {"name": "o", "type": "categorical", "choices": ["a", "b"]},
    ]
    spec = spec_of(algorithm={"type": "grid"}, parameters=params, maxTrials=6)
    records: list[TrialRecord] = []
    for k in range(6):
        (s,) = study.suggest(study.rebuild(spec, "s", records)[0], spec, [k])
        records.append(TrialRecord(k, f"s-{k}", s.params, "Succeeded", [0.5], {}, s.system_attrs))
    assert len({(r.params["d"], r.params["o"]) for r in records}) == 6
    assert outcome.ending(spec, records, 0) == outcome.Ending(
        "Completed", "MaxTrialsReached", "all 6 trials finished"
    )


def test_intermediate_values_align_on_common_steps() -> None:
    a = TrialRecord(0, "s-0", {}, "Succeeded", [1.0], {10: 0.5, 30: 0.9})
    b = TrialRecord(1, "s-1", {}, "Running", None, {12: 0.2, 25: 0.3})
    assert study.aligned([a, b]) == {
        0: {10: 0.5, 12: 0.5, 25: 0.5, 30: 0.9},
        1: {12: 0.2, 25: 0.3},
    }


def test_median_pruning_stops_the_trial_below_the_median() -> None:
    spec = spec_of(
        algorithm={"type": "random"}, earlyStopping={"type": "median", "startupTrials": 2}
    )
    p = {"lr": 0.01, "hidden": 32, "opt": "adam"}
    records = [
        done(0, p, 0.9, {10: 0.8, 20: 0.9}),
        done(1, p, 0.8, {10: 0.7, 20: 0.8}),
        TrialRecord(2, "s-2", p, "Running", None, {11: 0.1}),
        TrialRecord(3, "s-3", p, "Running", None, {11: 0.95}),
        TrialRecord(4, "s-4", p, "Running", None, {}),
    ]
    built, index = study.rebuild(spec, "s", records)
    pruned, _ = study.prune_verdicts(built, index, records[2:])
    assert pruned == [2]


def test_asha_bookkeeping_is_returned_to_be_stored_on_the_trial() -> None:
    """ASHA keeps its rungs in the trial's system attributes: they go back to the cluster (an
    annotation) and come back into the next rebuilt study."""
    spec = spec_of(
        algorithm={"type": "random"},
        earlyStopping={"type": "asha", "minResource": 10, "reductionFactor": 2},
    )
    p = {"lr": 0.01, "hidden": 32, "opt": "adam"}
    running = TrialRecord(0, "s-0", p, "Running", None, {10: 0.5})
    built, index = study.rebuild(spec, "s", [running])
    _, changed = study.prune_verdicts(built, index, [running])
    assert changed[0]
    stored = TrialRecord(0, "s-0", p, "Running", None, {10: 0.5}, changed[0])
    built, index = study.rebuild(spec, "s", [stored])
    assert study.prune_verdicts(built, index, [stored]) == ([], {})


def test_sampler_settings_errors_say_what_to_change() -> None:
    spec = spec_of(algorithm={"type": "tpe", "settings": {"no_such_option": 1}})
    with pytest.raises(study.EngineError, match=r"spec.algorithm.settings for tpe"):
        study.rebuild(spec, "s", [])


P = {"lr": 0.01, "hidden": 32, "opt": "adam"}


@pytest.mark.parametrize(
    ("changes", "records", "elapsed", "reason"),
    [
        ({}, [done(0, P, 0.5, {})], 1, None),
        ({"maxTrials": 1, "parallelTrials": 1}, [done(0, P, 0.5, {})], 1, "MaxTrialsReached"),
        (
            {"objective": {"metric": "test_accuracy", "goal": 0.9}},
            [done(0, P, 0.95, {})],
            1,
            "GoalReached",
        ),
        ({"objective": {"metric": "test_accuracy", "goal": 0.99}}, [done(0, P, 0.95, {})], 1, None),
        (
            {"objective": {"metric": "test_loss", "direction": "minimize", "goal": 0.2}},
            [done(0, P, 0.1, {})],
            1,
            "GoalReached",
        ),
        (
            {"completion": {"trialsWithoutImprovement": 2}},
            [done(0, P, 0.9, {}), done(1, P, 0.8, {}), done(2, P, 0.9, {})],
            1,
            "NoImprovement",
        ),
        (
            {"completion": {"trialsWithoutImprovement": 2}},
            [done(0, P, 0.9, {}), done(1, P, 0.8, {}), done(2, P, 0.91, {})],
            1,
            None,
        ),
        ({"maxRuntimeSeconds": 60}, [TrialRecord(0, "s-0", P, "Running")], 61, "MaxRuntimeReached"),
        (
            {"maxFailedTrials": 1},
            [TrialRecord(0, "s-0", P, "Failed"), TrialRecord(1, "s-1", P, "Failed")],
            1,
            "TooManyFailedTrials",
        ),
        ({"maxFailedTrials": 1}, [TrialRecord(0, "s-0", P, "Failed")], 1, None),
    ],
)
def test_completion_criteria(
    changes: dict[str, Any], records: list[TrialRecord], elapsed: float, reason: str | None
) -> None:
    ending = outcome.ending(spec_of(**changes), records, elapsed)
    assert (ending.reason if ending else None) == reason


def test_new_trials_fill_free_slots_within_max_trials() -> None:
    spec = spec_of(maxTrials=3, parallelTrials=2)
    running = TrialRecord(0, "s-0", P, "Running")
    assert outcome.wanted(spec, []) == 2
    assert outcome.wanted(spec, [running]) == 1
    assert outcome.wanted(spec, [running, done(1, P, 1, {}), done(2, P, 1, {})]) == 0


def test_a_pareto_front_for_multiple_objectives() -> None:
    spec = spec_of(
        secondaryObjectives=[{"metric": "test_loss", "direction": "minimize"}],
        algorithm={"type": "nsga2"},
        earlyStopping={"type": "none"},
    )
    records = [
        TrialRecord(0, "s-0", P, "Succeeded", [0.9, 0.3]),
        TrialRecord(1, "s-1", P, "Succeeded", [0.8, 0.1]),
        TrialRecord(2, "s-2", P, "Succeeded", [0.7, 0.4]),  # dominated by both
    ]
    built, index = study.rebuild(spec, "s", records)
    assert [t.name for t in outcome.leaderboard(spec, records, built, index)] == ["s-0", "s-1"]


def job(number: int, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"s-{number}",
            "labels": {"trainforge.io/trial-number": str(number)},
            "annotations": {},
        },
        "spec": {"hyperparameters": {"lr": 0.01, "epochs": 3}},
        "status": {"phase": phase, **status},
    }


def test_a_trial_is_read_back_from_its_trainingjob() -> None:
    spec = spec_of()
    body = job(
        4,
        "Succeeded",
        results={"test_accuracy": 0.97},
        metricHistory=[{"step": 10, "metrics": {"val_accuracy": 0.8}}],
        progress={"step": 30, "metrics": {"val_accuracy": 0.95}},
        artifacts={"uri": "s3://b/ns/s-4"},
    )
    record = record_from_job(body, spec.objectives)
    assert record == TrialRecord(
        4,
        "s-4",
        {"lr": 0.01, "epochs": 3},
        "Succeeded",
        [0.97],
        {10: 0.8, 30: 0.95},
        {},
        "s3://b/ns/s-4",
    )


@pytest.mark.parametrize(
    ("phase", "annotations", "results", "state"),
    [
        ("Running", {}, {}, "Running"),
        ("Starting", {}, {}, "Pending"),
        (None, {}, {}, "Pending"),
        ("Running", {"trainforge.io/stop-reason": "Pruned"}, {}, "Pruned"),
        ("Stopped", {}, {}, "Pruned"),
        ("Failed", {}, {}, "Failed"),
        ("Succeeded", {}, {}, "Failed"),  # ended without the objective: nothing to learn from
    ],
)
def test_trial_states(
    phase: str | None, annotations: dict[str, str], results: dict[str, float], state: str
) -> None:
    body = job(0, phase or "", results=results)
    body["metadata"]["annotations"] = annotations
    record = record_from_job(body, spec_of().objectives)
    assert record is not None
    assert record.state == state

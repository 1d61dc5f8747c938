"""The Optuna study of a sweep, rebuilt from its trial records on every pass.

No database and no memory between passes: `rebuild()` adds every trial to a fresh in-memory study
(warm-start trials first), so the same seed and the same trials always give the same study, the
same suggestions and the same pruning verdicts. Each new trial is asked with a sampler seeded
from (seed, trial number), so a suggestion never depends on how many passes came before.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.pruners import SuccessiveHalvingPruner as AshaPruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from trainforge_api.trainingsweep import TrainingSweepSpec
from trainforge_sweep import space
from trainforge_sweep.trials import TrialRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)

_OPTUNA_STATE = {
    "Succeeded": TrialState.COMPLETE,
    "Failed": TrialState.FAIL,
    "Pruned": TrialState.PRUNED,
    "Stopped": TrialState.PRUNED,  # cut short when the sweep ended: Optuna's nearest state
    "Pending": TrialState.RUNNING,
    "Running": TrialState.RUNNING,
}


class EngineError(ValueError):
    """The sweep cannot be run as specified (e.g. bad sampler settings); says what to change."""


@dataclass(frozen=True)
class Suggestion:
    number: int
    params: dict[str, Any]
    system_attrs: dict[str, Any]


def trial_seed(spec: TrainingSweepSpec, number: int) -> int:
    """The sampler seed for trial `number`. Grid keeps the sweep's seed: it shuffles the grid once
    with it and gives trial k the k-th point, so every trial must see the same shuffle."""
    seed = spec.algorithm.seed
    return seed if spec.algorithm.type == "grid" else (seed * 1_000_003 + number) % (2**32)


def make_sampler(spec: TrainingSweepSpec, seed: int) -> BaseSampler:
    """The Optuna sampler of spec.algorithm, with its settings as keyword arguments."""
    algo, settings = spec.algorithm.type, dict(spec.algorithm.settings)
    try:
        if algo == "grid":
            return optuna.samplers.GridSampler(space.grid(spec.parameters), seed=seed, **settings)
        if algo == "random":
            return optuna.samplers.RandomSampler(seed=seed, **settings)
        if algo == "tpe":
            return optuna.samplers.TPESampler(seed=seed, **settings)
        if algo == "gp":
            _need_torch()
            return optuna.samplers.GPSampler(seed=seed, **settings)
        if algo == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, **settings)
        return optuna.samplers.NSGAIISampler(seed=seed, **settings)
    except EngineError:
        raise
    except ImportError as err:  # gp needs torch (not in the operator image), cmaes needs cmaes
        raise EngineError(f"spec.algorithm {algo} is not available here: {err}") from err
    except (TypeError, ValueError) as err:
        raise EngineError(f"spec.algorithm.settings for {algo}: {err}") from err


GP_NEEDS_TORCH = (
    "spec.algorithm.type gp (Optuna's GPSampler) needs PyTorch, which is not installed here (the "
    "operator image does not ship it, to stay small). Use tpe, also a Bayesian method, in the "
    "cluster; or run this sweep on a machine with PyTorch: trainforge sweep FILE --local "
    "(the worker image has it)"
)


def _need_torch() -> None:
    """GPSampler imports torch only when it first samples, deep inside ask(); say it up front."""
    if importlib.util.find_spec("torch") is None:
        raise EngineError(GP_NEEDS_TORCH)


def make_pruner(spec: TrainingSweepSpec) -> BasePruner:
    es = spec.early_stopping
    if es.type == "median":
        return MedianPruner(n_startup_trials=es.startup_trials, n_warmup_steps=es.warmup_steps)
    if es.type == "asha":
        return AshaPruner(
            min_resource=es.min_resource or "auto", reduction_factor=es.reduction_factor
        )
    if es.type == "hyperband":
        return HyperbandPruner(
            min_resource=es.min_resource or 1,
            max_resource=es.max_resource or "auto",
            reduction_factor=es.reduction_factor,
        )
    return NopPruner()


def aligned(records: list[TrialRecord]) -> dict[int, dict[int, float]]:
    """Intermediate values on a common set of steps: trials are polled at different steps, and
    pruners compare trials at the same step. Each trial's value at every step anyone reported
    (within its own first..last step) is its latest value at or before that step."""
    steps = sorted({s for r in records for s in r.intermediate})
    out: dict[int, dict[int, float]] = {}
    for r in records:
        if not r.intermediate:
            out[r.number] = {}
            continue
        own = sorted(r.intermediate)
        values: dict[int, float] = {}
        i = -1
        for s in steps:
            if s < own[0] or s > own[-1]:
                continue
            while i + 1 < len(own) and own[i + 1] <= s:
                i += 1
            values[s] = r.intermediate[own[i]]
        out[r.number] = values
    return out


def _frozen(
    r: TrialRecord,
    dists: dict[str, BaseDistribution],
    intermediate: dict[int, float],
    warm: bool,
) -> FrozenTrial | None:
    params = {k: r.params[k] for k in dists if k in r.params}
    if len(params) != len(dists):
        return None  # not from this search space (a warm start of another shape)
    state = _OPTUNA_STATE[r.state]
    if warm and state != TrialState.COMPLETE:
        return None
    try:
        return create_trial(
            state=state,
            params=params,
            distributions=dists,
            values=r.values if state == TrialState.COMPLETE else None,
            intermediate_values=intermediate,
            system_attrs={} if warm else dict(r.system_attrs),
        )
    except ValueError as err:
        log.info("trial %s left out of the study: %s", r.name, err)
        return None


def rebuild(
    spec: TrainingSweepSpec,
    name: str,
    trials: list[TrialRecord],
    warm: list[TrialRecord] | None = None,
) -> tuple[optuna.Study, dict[int, int]]:
    """A fresh in-memory study holding the warm-start trials, then this sweep's trials in number
    order. Returns it with a map from trial number to the study's trial index."""
    directions = [o.direction for o in spec.objectives]
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        study_name=name,
        directions=directions,
        sampler=make_sampler(spec, spec.algorithm.seed),
        pruner=make_pruner(spec),
    )
    dists = space.distributions(spec.parameters)
    # Warm-start trials are numbered in their own sweeps: renumber them below 0 so that they
    # never share a number (and so aligned intermediate values) with this sweep's trials.
    warm = [dataclasses.replace(r, number=-1 - i) for i, r in enumerate(warm or [])]
    everything = [*warm, *sorted(trials, key=lambda r: r.number)]
    values = aligned(everything)
    index: dict[int, int] = {}
    for position, r in enumerate(everything):
        frozen = _frozen(r, dists, values[r.number], warm=position < len(warm))
        if frozen is None:
            continue
        study.add_trial(frozen)
        if position >= len(warm):
            index[r.number] = len(study.trials) - 1
    return study, index


def suggest(study: optuna.Study, spec: TrainingSweepSpec, numbers: list[int]) -> list[Suggestion]:
    """Ask the study for the trials `numbers` (each with a sampler seeded by its number)."""
    dists = space.distributions(spec.parameters)
    out: list[Suggestion] = []
    for number in numbers:
        study.sampler = make_sampler(spec, trial_seed(spec, number))
        try:
            trial = study.ask(dists)
        except (ImportError, RuntimeError) as err:  # e.g. gp without torch
            raise EngineError(f"spec.algorithm {spec.algorithm.type}: {err}") from err
        frozen = study.trials[trial.number]
        out.append(Suggestion(number, dict(trial.params), dict(frozen.system_attrs)))
    return out


def prune_verdicts(
    study: optuna.Study, index: dict[int, int], running: list[TrialRecord]
) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """Which running trials the pruner stops, and the trials whose bookkeeping (system attrs,
    e.g. ASHA's completed rungs) changed and must be stored back on them."""
    pruned: list[int] = []
    changed: dict[int, dict[str, Any]] = {}
    for r in sorted(running, key=lambda r: r.number):
        at = index.get(r.number)
        if at is None or r.last_step is None:
            continue
        if study.pruner.prune(study, study.trials[at]):
            pruned.append(r.number)
        attrs = dict(study.trials[at].system_attrs)
        if attrs != r.system_attrs:
            changed[r.number] = attrs
    return pruned, changed

"""The TrainingSweep API (group trainforge.io, version v1alpha1): hyperparameter search where every
trial is a real TrainingJob.

One pydantic source of truth, like `trainingjob.py`: `hack/gen_crds.py` turns these models into
the CRD, the operator's sweep controller and the runtime's local mode (`trainforge sweep --local`)
read sweeps through them. `spec.trialTemplate` IS a `TrainingJobSpec` (imported, not copied), so a
trial gets every TrainingJob feature. The cross-field rules are in `sweeprules.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from trainforge_api.base import API_VERSION, Model
from trainforge_api.trainingjob import Condition, TrainingJobSpec

KIND = "TrainingSweep"
PLURAL = "trainingsweeps"
SINGULAR = "trainingsweep"
SHORT_NAMES = ["tsw"]
CATEGORIES = ["all", "trainforge", "ml"]

Direction = Literal["minimize", "maximize"]
ParameterType = Literal["float", "int", "categorical"]
AlgorithmType = Literal["grid", "random", "tpe", "gp", "cmaes", "nsga2"]
EarlyStoppingType = Literal["none", "median", "asha", "hyperband"]
SweepPhase = Literal["Pending", "Running", "Completed", "Failed"]
# Stopped: still running when the sweep ended (stop reason SweepEnded), neither pruned nor failed.
TrialState = Literal["Pending", "Running", "Succeeded", "Failed", "Pruned", "Stopped"]
Retention = Literal["All", "Best", "None"]
# A categorical choice is injected into `hyperparameters` as the typed value it was written as.
Choice = str | int | float | bool


class Objective(Model):
    """A metric to optimise: read from the trial's status.results (final) and, while it runs,
    from its reported progress (intermediate, for early stopping)."""

    metric: str = Field(
        min_length=1,
        max_length=253,
        description="Final metric name, read from the trial's status.results (rank 0's "
        "final metrics), else from its last reported progress metrics.",
    )
    direction: Direction = Field("maximize", description="minimize or maximize.")
    goal: float | None = Field(
        None, description="The sweep completes as soon as a trial reaches this value."
    )
    intermediate_metric: str | None = Field(
        None,
        max_length=253,
        description="Metric reported while training, used by early stopping; defaults to metric. "
        "For the digits trainer: val_accuracy or val_loss.",
    )

    @property
    def progress_metric(self) -> str:
        return self.intermediate_metric or self.metric


class Parameter(Model):
    """One dimension of the search space, injected into hyperparameters[name] as a typed value."""

    name: str = Field(
        min_length=1, max_length=253, description="Key in the trial's spec.hyperparameters."
    )
    type: ParameterType = Field(description="float, int or categorical.")
    low: float | None = Field(None, description="Lower bound (float and int), inclusive.")
    high: float | None = Field(None, description="Upper bound (float and int), inclusive.")
    log: bool = Field(False, description="Sample on a log scale (needs low > 0).")
    step: float | None = Field(
        None,
        gt=0,
        description="Discretisation step (int: defaults to 1; float: makes it gridable).",
    )
    choices: list[Any] = Field(
        default_factory=list,
        max_length=1000,
        description="Values of a categorical (strings, numbers or booleans).",
    )


class Algorithm(Model):
    """The Optuna sampler that proposes trials."""

    type: AlgorithmType = Field(
        "tpe",
        description="grid, random, tpe (Bayesian, TPE), gp (Gaussian process), cmaes or nsga2 "
        "(multi-objective, genetic).",
    )
    seed: int = Field(0, ge=0, description="Seed: the same seed and trials give the same study.")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments of the Optuna sampler, for example "
        "n_startup_trials for tpe.",
    )


class EarlyStopping(Model):
    """The Optuna pruner that stops unpromising trials from their reported progress."""

    type: EarlyStoppingType = Field(
        "none",
        description="none, median (stop below the median of earlier trials at the same step), "
        "asha (successive halving) or hyperband.",
    )
    startup_trials: int = Field(
        3, ge=0, le=10000, description="median: finished trials before anything is pruned."
    )
    warmup_steps: int = Field(
        0, ge=0, description="median: never prune a trial before this training step."
    )
    min_resource: int | None = Field(
        None, ge=1, description="asha and hyperband: steps a trial gets before the first rung."
    )
    max_resource: int | None = Field(
        None, ge=1, description="hyperband: steps of a full trial (default: the longest seen)."
    )
    reduction_factor: int = Field(
        3, ge=2, le=100, description="asha and hyperband: keep 1 in reductionFactor per rung."
    )


class CompletionCriteria(Model):
    """SageMaker-style completion: stop searching before maxTrials."""

    trials_without_improvement: int | None = Field(
        None, ge=1, description="Complete after this many finished trials without a new best."
    )


class TrainingSweepSpec(Model):
    """Desired state of a TrainingSweep: what to optimise, over which space, how, within which
    limits, and the TrainingJob every trial is built from."""

    objective: Objective = Field(description="The primary objective (with an optional goal).")
    secondary_objectives: list[Objective] = Field(
        default_factory=list,
        max_length=8,
        description="More objectives for a multi-objective search; status then shows the "
        "Pareto front instead of a single best trial.",
    )
    parameters: list[Parameter] = Field(
        default_factory=list, max_length=64, description="The typed search space."
    )
    algorithm: Algorithm = Field(default_factory=Algorithm)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    max_trials: int = Field(20, ge=1, le=10000, description="Trials to run in total.")
    parallel_trials: int = Field(2, ge=1, le=1000, description="Trials running at once.")
    max_failed_trials: int = Field(
        3, ge=0, le=10000, description="The sweep fails when more trials than this failed."
    )
    max_runtime_seconds: int | None = Field(
        None, ge=1, description="Complete (no new trials, running ones stopped) after this long."
    )
    completion: CompletionCriteria = Field(default_factory=CompletionCriteria)
    warm_start_from: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Earlier TrainingSweeps in this namespace whose finished trials seed the "
        "study.",
    )
    retention: Retention = Field(
        "All",
        description="Trials kept once the sweep finished: All, Best (the best trial or the Pareto "
        "front) or None. Until then every trial is kept: the study is rebuilt from them.",
    )
    leaderboard_size: int = Field(5, ge=1, le=100, description="Top-K trials shown in status.")
    trial_template: TrainingJobSpec = Field(
        description="The TrainingJob spec of every trial; each trial's hyperparameters are these "
        "merged with its sampled parameters."
    )

    @property
    def objectives(self) -> list[Objective]:
        return [self.objective, *self.secondary_objectives]

    @property
    def multi_objective(self) -> bool:
        return bool(self.secondary_objectives)


# --- status -------------------------------------------------------------------------------------


class TrialCounts(Model):
    total: int = Field(0, description="Trials created so far (every state).")
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    pruned: int = 0
    stopped: int = Field(0, description="Stopped because the sweep ended (not pruned).")
    done: str = Field("0/0", description="Finished trials / maxTrials, for the printer column.")


class TrialSummary(Model):
    """One trial as the sweep sees it."""

    name: str
    number: int
    state: TrialState
    params: dict[str, Any] = Field(default_factory=dict)
    value: float | None = None
    values: list[float] = Field(default_factory=list)
    artifacts_uri: str | None = None


class SweepReport(Model):
    """The sweep's HTML report in object storage, and what the last uploaded copy shows."""

    uri: str = Field(description="Where it is written: <artifacts.uri>/<ns>/<sweep>/report.html.")
    finished_trials: int = Field(0, description="Finished trials the uploaded report shows.")
    best_trial: str | None = Field(None, description="The best trial the uploaded report shows.")
    final: bool = Field(False, description="Uploaded after the sweep ended: it will not change.")
    upload_time: str | None = Field(None, description="When the report was last uploaded.")
    last_attempt_time: str | None = Field(
        None, description="When an upload was last tried (a failed one is retried after a minute)."
    )


class TrainingSweepStatus(Model):
    """Observed state, written by the operator once per reconcile when it changed."""

    phase: SweepPhase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    trials: TrialCounts = Field(default_factory=TrialCounts)
    best_trial: TrialSummary | None = None
    leaderboard: list[TrialSummary] = Field(
        default_factory=list, description="Top-K trials, or the Pareto front (multi-objective)."
    )
    trials_without_improvement: int = 0
    start_time: str | None = None
    completion_time: str | None = None
    report: SweepReport | None = Field(
        None,
        description="The HTML report (history, parallel coordinates, importance, intermediate "
        "values, trial table) uploaded next to the trials' artifacts when the best trial changes "
        "and when the sweep ends.",
    )
    message: str = Field("", description="Human summary of the current phase.")


class TrainingSweep(Model):
    """A whole TrainingSweep object (used for validation, local mode and tests)."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrainingSweepSpec
    status: TrainingSweepStatus | None = None

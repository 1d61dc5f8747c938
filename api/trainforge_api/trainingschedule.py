"""The TrainingSchedule API: retrain on a cron schedule or when new data lands, promote only a
better model.

A TrainingSchedule creates TrainingJobs from `jobTemplate` (a TrainingJobSpec, the very model a
TrainingJob has) when its cron `schedule` fires or when the fingerprint of `jobTemplate.data.uri`
changes (`newData`). Each finished run is compared on the held-out test split with a baseline the
run computed itself, with the current champion (by `promotion.margin`) and with its health
findings; a run that passes becomes the champion. The cross-field rules are in
`schedule_rules.py`; the checks CEL cannot do (croniter parses the cron expression, zoneinfo knows
the time zone) are made by the operator, which reports them as an `InvalidSpec` condition.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from trainforge_api.base import API_VERSION, Model
from trainforge_api.trainingjob import Condition, TrainingJobSpec

KIND = "TrainingSchedule"
PLURAL = "trainingschedules"
SINGULAR = "trainingschedule"
SHORT_NAMES = ["tsc"]
CATEGORIES = ["all", "trainforge", "ml"]

# Runs are named `<schedule>-<unix minute of the scheduled time>` (8 digits until the year 2160)
# and a run's name must leave room for `-worker-<index>` (trainingjob.MAX_POD_NAME).
MAX_NAME = 42

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
WarmStart = Literal["champion", "latest", "none"]
FingerprintBy = Literal["etag", "mtime", "manifest"]
Direction = Literal["maximize", "minimize"]
Trigger = Literal["schedule", "newData"]
RunResult = Literal["Running", "Promoted", "NotPromoted", "Failed"]


class NewData(Model):
    """Start a run when the data under `jobTemplate.data.uri` changes."""

    by: FingerprintBy = Field(
        description="What identifies a version of the data: etag (object ETags, for s3:// and "
        "gs://), mtime (modification times, any fsspec filesystem incl. file://) or manifest (the "
        "bytes of `manifestPath`, written by the producer after a complete drop)."
    )
    manifest_path: str = Field(
        "manifest.json",
        max_length=1024,
        description="With by: manifest, the manifest's path relative to data.uri.",
    )
    min_interval_seconds: int = Field(
        300,
        description="Look at the data at most this often; also the shortest time between two "
        "data-triggered runs.",
    )


class Promotion(Model):
    """The gate a finished run passes to become the champion."""

    metric: str = Field(
        "test_accuracy",
        max_length=253,
        description="Objective metric on the held-out test split, a key of the run's "
        "status.results.",
    )
    direction: Direction = Field("maximize", description="Whether a larger metric is better.")
    margin: float = Field(
        0.0, description="How much better than the champion a run must be to replace it."
    )
    baseline_metric: str | None = Field(
        None,
        max_length=253,
        description="Key of the baseline score computed in the same run; defaults to "
        "baseline_<metric>.",
    )
    require_baseline: bool = Field(
        True, description="A run must beat its own baseline (a run without one is not promoted)."
    )
    champion_history_limit: int = Field(
        5, description="Former champions kept in status.championHistory."
    )

    @property
    def baseline_key(self) -> str:
        return self.baseline_metric or f"baseline_{self.metric}"


class TrainingScheduleSpec(Model):
    """Desired state: when to retrain, what to run, and what a better model is."""

    schedule: str | None = Field(
        None,
        max_length=256,
        description="Cron expression (5 fields, or @hourly/@daily/...), as for a CronJob.",
    )
    time_zone: str = Field(
        "UTC", max_length=64, description="IANA time zone the schedule is read in."
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        "Forbid",
        description="When a run is due while one is active: Allow both, Forbid (skip the new "
        "one) or Replace (delete the active one).",
    )
    starting_deadline_seconds: int | None = Field(
        None,
        description="A scheduled run that could not start within this many seconds is skipped; "
        "after operator downtime only the latest missed time within it is caught up.",
    )
    successful_runs_history_limit: int = Field(3, description="Succeeded runs kept.")
    failed_runs_history_limit: int = Field(1, description="Failed runs kept.")
    suspend: bool = Field(False, description="Create no new runs (active ones continue).")
    job_template: TrainingJobSpec = Field(description="The TrainingJob spec of every run.")
    new_data: NewData | None = Field(
        None, description="Also (or only) start a run when jobTemplate.data.uri changes."
    )
    warm_start: WarmStart = Field(
        "none",
        description="Pass the champion's (or the latest successful run's) artifacts to the new "
        "run as TRAINFORGE_WARM_START_URI; the shipped trainers start from that model "
        "(ctx.warm_start), unless it no longer fits.",
    )
    promotion: Promotion = Field(default_factory=Promotion)


# --- status -------------------------------------------------------------------------------------


class Champion(Model):
    """The model serving systems should use: the run, its score and where its files are."""

    run: str
    metric: float
    artifacts_uri: str | None = None
    data_fingerprint: str | None = None
    promoted_at: str | None = None


class RunRecord(Model):
    """One run as the schedule last saw it; finished runs keep their verdict here."""

    name: str
    scheduled_time: str
    trigger: Trigger = "schedule"
    data_fingerprint: str | None = None
    result: RunResult = "Running"
    metric: float | None = None
    baseline: float | None = None
    reason: str = ""


class TrainingScheduleStatus(Model):
    """Observed state, written by the operator once per reconcile when it changed."""

    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    last_schedule_time: str | None = Field(
        None, description="The latest cron time that was acted on (run or skipped)."
    )
    next_run: str | None = Field(None, description="The next cron time.")
    last_run: str | None = Field(None, description="The newest run's name.")
    last_result: RunResult | None = None
    last_successful_time: str | None = Field(
        None, description="When a run last succeeded (promoted or not)."
    )
    active: list[str] = Field(default_factory=list, description="Runs not finished yet.")
    data_fingerprint: str | None = Field(
        None, description="The data's fingerprint when the operator last looked."
    )
    data_checked_at: str | None = None
    champion: Champion | None = None
    champion_history: list[Champion] = Field(default_factory=list)
    runs: list[RunRecord] = Field(
        default_factory=list, description="Kept runs, newest first, with their verdicts."
    )
    message: str = ""


class TrainingSchedule(Model):
    """A whole TrainingSchedule object (used for validation and in tests)."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrainingScheduleSpec
    status: TrainingScheduleStatus | None = None

"""The TrainingJob API (group trainforge.io, version v1alpha1): spec and status as pydantic models.

These models are the single source of truth: `hack/gen_crds.py` turns them into the CRD's
openAPIV3Schema, the operator validates every object with them, the runtime's local mode reads
TrainingJob files through them, and the worker's JobContext (`context.py`) reuses their parts.
Field names are snake_case in Python and camelCase on the wire (aliases); dump with
`by_alias=True`. The cross-field rules are in `rules.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from trainforge_api.base import API_VERSION, Model

KIND = "TrainingJob"
PLURAL = "trainingjobs"
SINGULAR = "trainingjob"
SHORT_NAMES = ["tj"]
CATEGORIES = ["all", "trainforge", "ml"]

# `<name>-worker-<index>` is a pod hostname and must stay a DNS-1123 label (<= 63 characters).
MAX_POD_NAME = 63
WORKER_SUFFIX = "-worker-"
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")

Layout = Literal["data", "fsdp", "pipeline", "tensor"]
Backend = Literal["auto", "nccl", "gloo"]
RecoveryMode = Literal["InPlace", "RecreateGang"]
Phase = Literal[
    "Pending",
    "Starting",
    "Running",
    "Restarting",
    "Succeeded",
    "Failed",
    "Suspended",
    "Stopped",
    "Queued",
]
# Queued: waiting for Kueue to admit the job's Workload (docs/kueue.md); it has no pods.
# Stopped: ended on request (the STOP_ANNOTATION, e.g. a sweep pruning a trial), not a failure.
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Stopped"})
# Set on a TrainingJob to end it as Stopped; the value is the reason (e.g. `Pruned`).
STOP_ANNOTATION = "trainforge.io/stop-reason"
# Progress points kept in status.metricHistory (older points thinned out, the first kept).
METRIC_HISTORY_LIMIT = 64

# Embedded core/v1 objects are kept as free-form dicts: the API server validates them when the
# operator creates the pods, and the CRD marks them x-kubernetes-preserve-unknown-fields.
K8sObject = dict[str, Any]
# A Kubernetes resource quantity that is not negative ("500m", "2Gi", "1.5", "1e3"): the
# apimachinery grammar without the sign, so `memory: lots` or `cpu: "-2"` fail at apply.
QUANTITY = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE]\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


# The rules the runtime implements (trainforge_runtime/health.py); the CRD's enum comes from here.
# How spec.hyperparameters reach the user's processes (docs/byo-code.md): env
# TRAINFORGE_HP_<NAME>, a JSON file at $TRAINFORGE_HP_FILE, or --name=value arguments.
HyperparameterChannel = Literal["env", "file", "args"]
HyperparameterChannels = list[HyperparameterChannel]
DEFAULT_HYPERPARAMETERS_AS: tuple[HyperparameterChannel, ...] = ("env", "file")
# How a worker pod starts the command (trainforge_api.launchers, docs/byo-code.md).
LauncherMode = Literal["auto", "runtime", "standalone"]

HealthRuleName = Literal[
    "nan_loss",
    "exploding_gradients",
    "vanishing_gradients",
    "loss_not_decreasing",
    "overfitting",
    "low_gpu_utilization",
    "dataloader_bound",
]


class Parallelism(Model):
    """How the gang is shaped: nodes (pods) x procsPerNode (local ranks) and the model layout."""

    layout: Layout = Field(
        "data",
        description="data (DDP), fsdp (fully sharded), pipeline (pipelineStages > 1) or tensor "
        "(tensorParallel > 1).",
    )
    nodes: int = Field(
        1, ge=1, le=1000, description="Number of worker pods (node ranks): the desired size."
    )
    min_nodes: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Elastic: the smallest number of nodes that trains (default nodes). The "
        "gang starts once this many workers run, and keeps training when it shrinks to it. "
        "Layout data (DDP) only; other layouts need minNodes == maxNodes == nodes.",
    )
    max_nodes: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Elastic: the largest world the rendezvous admits (default nodes).",
    )
    procs_per_node: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Local ranks per pod. Defaults to resources.gpus, or 1 without GPUs.",
    )
    tensor_parallel: int = Field(1, ge=1, le=64, description="Tensor-parallel degree.")
    pipeline_stages: int = Field(1, ge=1, le=64, description="Pipeline-parallel stages.")
    backend: Backend = Field(
        "auto", description="torch.distributed backend; auto picks nccl with GPUs, else gloo."
    )

    @property
    def min_size(self) -> int:
        """minNodes with its default (nodes)."""
        return self.nodes if self.min_nodes is None else self.min_nodes

    @property
    def max_size(self) -> int:
        """maxNodes with its default (nodes)."""
        return self.nodes if self.max_nodes is None else self.max_nodes

    @property
    def elastic(self) -> bool:
        """Whether the world may change size while training (minNodes < maxNodes)."""
        return self.min_size < self.max_size


class Resources(Model):
    """Per-pod compute. GPUs are requested with the node pool's extended resource name."""

    gpus: int = Field(0, ge=0, le=64, description="GPUs per pod.")
    gpu_resource_name: str | None = Field(
        None,
        max_length=253,
        description="Extended resource name of the GPU; defaults to the node pool's "
        "(nvidia.com/gpu).",
    )
    cpu: str = Field(
        "1", max_length=32, pattern=QUANTITY, description="CPU request and limit per pod."
    )
    memory: str = Field(
        "2Gi", max_length=32, pattern=QUANTITY, description="Memory request and limit per pod."
    )
    shared_memory: str = Field(
        "1Gi",
        max_length=32,
        pattern=QUANTITY,
        description="Size of the memory-backed /dev/shm (dataloaders, NCCL).",
    )


class Placement(Model):
    """Raw scheduling overrides, merged on top of the node pool's placement."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra nodeSelector.")
    tolerations: list[K8sObject] = Field(
        default_factory=list, description="Extra core/v1 tolerations."
    )
    affinity: K8sObject = Field(default_factory=dict, description="core/v1 Affinity (replaces).")
    priority_class_name: str = Field("", max_length=253, description="Pod priorityClassName.")
    scheduler_name: str = Field("", max_length=253, description="Pod schedulerName.")


class PodTemplate(Model):
    """Pod-level overrides applied to every worker pod."""

    volumes: list[K8sObject] = Field(default_factory=list, description="Extra core/v1 volumes.")
    volume_mounts: list[K8sObject] = Field(
        default_factory=list, description="Extra core/v1 volumeMounts on the worker container."
    )
    service_account_name: str = Field("", max_length=253, description="Pod serviceAccountName.")
    security_context: K8sObject = Field(
        default_factory=dict,
        description="Pod securityContext, laid over the default (non-root uid 1000, its group, "
        "RuntimeDefault seccomp): the keys set here win.",
    )
    image_pull_secrets: list[K8sObject] = Field(
        default_factory=list, description="core/v1 LocalObjectReferences."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra pod labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra pod annotations.")


# What a failure-policy rule does with a failure it matches (docs/failure-policy.md).
FailureAction = Literal["Fail", "Restart", "RestartIgnoringMax", "Ignore"]
# The reasons the operator derives for a pod that failed or vanished, besides the raw pod and
# container reasons (Error, OOMKilled, ...) a rule may also name.
DISRUPTION_REASONS: tuple[str, ...] = ("Evicted", "Preempted", "NodeLost", "Shutdown")


class ExitCodeMatch(Model):
    """Exit codes of the failed container, as in a Job's podFailurePolicy."""

    operator: Literal["In", "NotIn"] = Field(
        description="In: the exit code is one of values; NotIn: it is none of them."
    )
    values: list[Annotated[int, Field(ge=1, le=255)]] = Field(
        min_length=1,
        max_length=255,
        description="Exit codes (1-255; 0 is a success, never a failure).",
    )


class FailureRule(Model):
    """One rule: when every matcher it sets matches a failure, `action` decides what happens."""

    action: FailureAction = Field(
        description="Fail the job; Restart the gang (counted against maxRestarts); "
        "RestartIgnoringMax (not counted); Ignore (recreate the gang, counted nowhere)."
    )
    on_exit_codes: ExitCodeMatch | None = Field(
        None, description="Matches the failed container's exit code."
    )
    on_pod_conditions: list[str] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="Matches when one of these pod condition types is True (e.g. "
        "DisruptionTarget).",
    )
    on_reasons: list[str] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="Matches the failure's reason: Evicted, Preempted, NodeLost, Shutdown, "
        "PodDeleted, or a pod/container reason such as OOMKilled.",
    )


class FailurePolicy(Model):
    """Rules tried in order before the defaults; the first that matches decides."""

    rules: list[FailureRule] = Field(
        default_factory=list,
        max_length=32,
        description="Tried first to last; when none matches, the default rules decide "
        "(docs/failure-policy.md).",
    )


class RunPolicy(Model):
    """Restarts, deadlines, hang detection, cleanup and suspension."""

    max_restarts: int = Field(
        3, ge=0, le=1000, description="Restarts (gang or in place) before Failed."
    )
    recovery: RecoveryMode = Field(
        "InPlace",
        description="How a retryable failure of one worker is recovered. InPlace (default): only "
        "that pod is recreated and the other workers restart their processes in place and "
        "re-rendezvous (dynamic c10d rendezvous); node 0 lost, or a failure while the gang "
        "starts, still recreates the gang, as does the standalone launcher (it has no elastic "
        "agent). RecreateGang: every pod is deleted and recreated.",
    )
    retryable_exit_codes: list[int] = Field(
        default_factory=list,
        max_length=256,
        description="Exit codes that restart the gang (overrides the defaults).",
    )
    permanent_exit_codes: list[int] = Field(
        default_factory=list,
        max_length=256,
        description="Exit codes that fail the job (overrides the defaults).",
    )
    restart_backoff_seconds: int = Field(
        10, ge=0, description="Delay before the first gang restart; doubles per restart."
    )
    max_restart_backoff_seconds: int = Field(300, ge=0, description="Cap of the restart delay.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Fail the job when it has run (since start) longer than this."
    )
    max_pending_seconds: int | None = Field(
        None, ge=1, description="Fail the job when the whole gang is not running within this time."
    )
    progress_timeout_seconds: int | None = Field(
        None, ge=1, description="Stalled when rank 0's step does not advance for this long."
    )
    on_stall: Literal["restart", "fail"] = Field(
        "restart", description="What a Stalled job does: restart the gang or fail."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the job this long after it finished."
    )
    clean_pod_policy: Literal["Running", "All", "None"] = Field(
        "Running",
        description="Pods deleted when the job finishes: still running ones, all, or none.",
    )
    suspend: bool = Field(
        False, description="Suspended jobs have no pods (Kueue sets this while queued)."
    )
    failure_policy: FailurePolicy = Field(
        default_factory=FailurePolicy,
        description="Rules that decide whether a failure fails the job, restarts the gang "
        "(counted or not) or is ignored.",
    )


class SecretRef(Model):
    """Names a Secret and its keys; values reach pods only as secretKeyRef env."""

    name: str = Field(max_length=253, description="Secret in the job's namespace.")
    access_key_id_key: str = Field("AWS_ACCESS_KEY_ID", max_length=253)
    secret_access_key_key: str = Field("AWS_SECRET_ACCESS_KEY", max_length=253)


class Checkpoint(Model):
    """Where and how often rank 0 checkpoints; a restarted gang resumes from the newest."""

    uri: str | None = Field(None, max_length=2048, description="file://, local path or s3:// URI.")
    every_steps: int | None = Field(None, ge=1, description="Checkpoint every N steps.")
    every_seconds: int | None = Field(None, ge=1, description="Checkpoint every N seconds.")
    keep: int = Field(2, ge=1, le=100, description="Checkpoints to keep.")


class Artifacts(Model):
    """Where the final model and results are uploaded."""

    uri: str | None = Field(
        None,
        max_length=2048,
        description="Destination prefix (s3://, gs://, file:// or a path); each job's artifacts "
        "go under <uri>/<namespace>/<name>/.",
    )
    s3_endpoint: str | None = Field(None, max_length=2048, description="S3-compatible endpoint.")
    credentials_secret: SecretRef | None = Field(None, description="S3 credentials Secret.")
    upload_retries: int = Field(
        5, ge=0, le=20, description="Upload attempts after the first, with exponential backoff."
    )


class Profiling(Model):
    """torch.profiler schedule for selected ranks."""

    enabled: bool = False
    ranks: list[int] = Field(default_factory=lambda: [0], max_length=1024)
    wait: int = Field(1, ge=0)
    warmup: int = Field(1, ge=0)
    active: int = Field(3, ge=1)
    repeat: int = Field(1, ge=0)


class Metrics(Model):
    """Worker metrics: /metrics on every worker, /progress JSON on rank 0."""

    enabled: bool = True
    port: int = Field(9400, ge=1024, le=65535, description="Metrics and progress port.")
    linger_seconds: int = Field(
        15,
        ge=0,
        le=600,
        description="Keep /metrics up this long after training ends, so Prometheus scrapes the "
        "final values even of short runs. Set it to at least the scrape interval.",
    )


class HealthRule(Model):
    """A training-health rule evaluated by the runtime."""

    rule: HealthRuleName
    action: Literal["warn", "stop"] = "warn"
    params: dict[str, float] = Field(default_factory=dict)


class Health(Model):
    rules: list[HealthRule] = Field(default_factory=list, max_length=32)


class Data(Model):
    """A dataset staged into every worker pod before training starts (the dataset initializer).

    An init container copies `uri` (one object or everything under a prefix) into a volume that
    the workers see at `$TRAINFORGE_DATA_DIR`."""

    uri: str | None = Field(
        None,
        max_length=2048,
        description="Dataset to stage: s3://, gs://, http(s)://, file:// or a path; a prefix "
        "(directory) is copied recursively.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="fsspec storage options for the URI's filesystem (no secrets: use "
        "credentialsSecret).",
    )
    s3_endpoint: str | None = Field(None, max_length=2048, description="S3-compatible endpoint.")
    credentials_secret: SecretRef | None = Field(None, description="S3 credentials Secret.")
    size_limit: str | None = Field(
        None, max_length=32, description="sizeLimit of the emptyDir the data is staged into."
    )


class Mlflow(Model):
    tracking_uri: str = Field(max_length=2048)
    experiment: str = Field("trainforge", max_length=253)


class Tracking(Model):
    mlflow: Mlflow | None = None


class TrainingJobSpec(Model):
    """Desired state of a TrainingJob: what to run, how it is parallelised, and its policies."""

    image: str | None = Field(
        None, max_length=1024, description="Worker image; defaults to the operator's config."
    )
    command: list[str] = Field(
        default_factory=list, max_length=256, description="Program each local rank runs."
    )
    args: list[str] = Field(default_factory=list, max_length=1024, description="Its arguments.")
    env: list[K8sObject] = Field(
        default_factory=list, description="core/v1 EnvVar list (valueFrom allowed)."
    )
    working_dir: str | None = Field(None, max_length=4096, description="Container workingDir.")
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Free-form map passed to every worker."
    )
    hyperparameters_as: HyperparameterChannels = Field(
        default_factory=lambda: list(DEFAULT_HYPERPARAMETERS_AS),
        max_length=3,
        description="How hyperparameters reach the command: env (TRAINFORGE_HP_<NAME>), file "
        "(JSON at $TRAINFORGE_HP_FILE) and/or args (--name=value appended after spec.args).",
    )
    launcher: LauncherMode = Field(
        "auto",
        description="How each pod starts the command: runtime (trainforge's runtime in the "
        "image), standalone (an init container from the operator's worker image copies "
        "trainforge's standard-library launcher into the pod, so any image with python3 works), "
        "or auto: runtime for the operator's worker image and trainforge's own trainers, "
        "standalone for any other image.",
    )
    parallelism: Parallelism = Field(default_factory=Parallelism)
    resources: Resources = Field(default_factory=Resources)
    node_pool: str | None = Field(
        None, max_length=253, description="Node pool name mapped in the operator config."
    )
    placement: Placement = Field(default_factory=Placement)
    pod_template: PodTemplate = Field(default_factory=PodTemplate)
    run_policy: RunPolicy = Field(default_factory=RunPolicy)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    profiling: Profiling = Field(default_factory=Profiling)
    metrics: Metrics = Field(default_factory=Metrics)
    health: Health = Field(default_factory=Health)
    data: Data = Field(default_factory=Data)
    tracking: Tracking = Field(default_factory=Tracking)

    @property
    def procs_per_node(self) -> int:
        """procsPerNode with its default applied: one rank per GPU, or 1 on CPU."""
        if self.parallelism.procs_per_node is not None:
            return self.parallelism.procs_per_node
        return self.resources.gpus if self.resources.gpus > 0 else 1

    @property
    def world_size(self) -> int:
        return self.parallelism.nodes * self.procs_per_node


# --- status -------------------------------------------------------------------------------------


class Condition(Model):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class MembershipChange(Model):
    """A worker that joined or left the running gang, as the operator saw it from the pods."""

    time: str
    change: Literal["Joined", "Left"]
    pod: str
    nodes: int = Field(description="Running workers after the change.")


# Membership changes kept in status.membershipChanges (the newest).
MEMBERSHIP_HISTORY_LIMIT = 16


class WorkerCounts(Model):
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0


class LastFailure(Model):
    """The root cause of the latest gang failure: the failed container that terminated first."""

    pod: str = ""
    container: str = ""
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    message: str = ""
    attempt: int = 0
    action: str = Field(
        "", description="What the failure policy did: Fail, Restart, RestartIgnoringMax, Ignore."
    )
    rule: str = Field(
        "", description="The rule that matched: rules[i] of the spec, or default:<name>."
    )


class Recovery(Model):
    """The latest gang restart, from the failure until training advanced again."""

    kind: str = Field("gang", description="gang, in-place, elastic-shrink or elastic-grow.")
    failed_at: str | None = None
    step_at_failure: int | None = None
    recovered_at: str | None = Field(
        None, description="When steps advanced again (or all pods ran, without progress)."
    )
    seconds: float | None = Field(None, description="recoveredAt - failedAt.")
    lost_steps: int | None = Field(
        None, description="Steps redone: step at failure minus the step resumed from."
    )


class Progress(Model):
    """Rank 0's training progress as last read by the operator."""

    step: int | None = None
    total_steps: int | None = None
    percent: float | None = None
    eta_seconds: float | None = None
    eta: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    resumed_from_step: int | None = None
    phase: str | None = None
    updated_at: str | None = None
    last_advance_time: str | None = Field(
        None, description="When the operator last saw the step advance (hang detection)."
    )


class MetricPoint(Model):
    """Rank 0's metrics at one training step, as polled (intermediate values of a sweep trial)."""

    step: int
    metrics: dict[str, float] = Field(default_factory=dict)


class ArtifactSummary(Model):
    uri: str | None = None
    files: int | None = None
    bytes: int | None = None


class Finding(Model):
    rule: str = ""
    step: int | None = None
    message: str = ""
    action: str = ""


class TrainingJobStatus(Model):
    """Observed state, written by the operator once per reconcile when it changed."""

    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    workers: WorkerCounts = Field(default_factory=WorkerCounts)
    restarts: int = Field(
        0, description="Restarts (gang or in place) of action Restart or RestartIgnoringMax."
    )
    restarts_counted_towards_max: int = Field(
        0, description="Restarts of action Restart: what runPolicy.maxRestarts limits."
    )
    in_place_restarts: int = Field(
        0, description="Recoveries that recreated only the failed worker pods (in restarts too)."
    )
    current_nodes: int | None = Field(
        None, description="Worker pods of the current attempt that are running now."
    )
    desired_nodes: int | None = Field(
        None,
        description="spec.parallelism.nodes as the operator last acted on it: a change of nodes "
        "(an elastic job's resize) is named by a ScaledUp or ScaledDown Event.",
    )
    selector: str | None = Field(
        None,
        description="Label selector of the job's worker pods (for the scale subresource: "
        "kubectl scale and a HorizontalPodAutoscaler).",
    )
    members: list[int] = Field(
        default_factory=list,
        max_length=1000,
        description="Node indexes of the running workers (what membership changes compare to).",
    )
    membership_changes: list[MembershipChange] = Field(
        default_factory=list,
        max_length=MEMBERSHIP_HISTORY_LIMIT,
        description="The newest workers that joined or left the running gang.",
    )
    attempt: int = 0
    start_time: str | None = None
    running_time: str | None = None
    completion_time: str | None = None
    restart_after: str | None = Field(
        None, description="Earliest time the next gang attempt may be created (backoff)."
    )
    last_failure: LastFailure | None = None
    last_recovery: Recovery | None = None
    progress: Progress | None = None
    metric_history: list[MetricPoint] = Field(
        default_factory=list,
        max_length=METRIC_HISTORY_LIMIT,
        description="Polled progress metrics by step (bounded, thinned evenly when full): what "
        "a TrainingSweep's early stopping reads.",
    )
    artifacts: ArtifactSummary | None = None
    findings: list[Finding] = Field(default_factory=list)
    results: dict[str, Any] = Field(
        default_factory=dict, description="Final metrics from rank 0's termination message."
    )
    message: str = Field("", description="Human summary of the current phase.")


class TrainingJob(Model):
    """A whole TrainingJob object (used for validation and in tests)."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None

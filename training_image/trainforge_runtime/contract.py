"""The job-context contract between the operator and the worker runtime.

The operator renders a `JobContext` into a ConfigMap mounted at `CONTEXT_PATH` in every worker pod;
per-pod facts (rank, attempt) come from env, so the ConfigMap stays identical across gang restarts.
Local mode (`trainforge run --local`) builds the same object from a TrainingJob file. This module is
pure pydantic (no torch, no kubernetes) so both sides can import it cheaply.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONTRACT_VERSION = "trainforge.io/v1alpha1"
CONTEXT_PATH = "/etc/trainforge/context.json"

# Env names set by the operator on every worker container (besides the torch.distributed ones:
# MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, NODE_RANK, NNODES, NPROC_PER_NODE and PET_*).
ENV_CONTEXT_FILE = "TRAINFORGE_CONTEXT"  # path of the context JSON (default CONTEXT_PATH)
ENV_ATTEMPT = "TRAINFORGE_ATTEMPT"  # gang restart attempt, 0-based
ENV_POD_NAME = "TRAINFORGE_POD_NAME"
ENV_FAULT = "TRAINFORGE_FAULT"  # deterministic fault injection, see runtime docs
ENV_S3_ENDPOINT = "TRAINFORGE_S3_ENDPOINT"  # S3-compatible endpoint URL for s3:// URIs

Layout = Literal["data", "fsdp", "pipeline", "tensor"]
Backend = Literal["auto", "nccl", "gloo"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class JobRef(_Model):
    name: str
    namespace: str = "default"
    uid: str = ""


class ParallelismContext(_Model):
    layout: Layout = "data"
    nodes: int = Field(1, ge=1)
    procs_per_node: int = Field(1, ge=1, alias="procsPerNode")
    tensor_parallel: int = Field(1, ge=1, alias="tensorParallel")
    pipeline_stages: int = Field(1, ge=1, alias="pipelineStages")
    backend: Backend = "auto"

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


class RendezvousContext(_Model):
    master_addr: str = Field("127.0.0.1", alias="masterAddr")
    master_port: int = Field(29500, alias="masterPort")


class CheckpointContext(_Model):
    uri: str | None = None
    every_steps: int | None = Field(None, alias="everySteps")
    every_seconds: int | None = Field(None, alias="everySeconds")
    keep: int = 2


class SecretKeyRef(_Model):
    """A reference only: secret values reach the worker as env from the Secret, never in context."""

    name: str
    access_key_id_key: str = Field("AWS_ACCESS_KEY_ID", alias="accessKeyIdKey")
    secret_access_key_key: str = Field("AWS_SECRET_ACCESS_KEY", alias="secretAccessKeyKey")


class ArtifactsContext(_Model):
    uri: str | None = None
    s3_endpoint: str | None = Field(None, alias="s3Endpoint")
    credentials_secret: SecretKeyRef | None = Field(None, alias="credentialsSecret")
    upload_retries: int = Field(5, alias="uploadRetries")


class ProfilingContext(_Model):
    enabled: bool = False
    ranks: list[int] = Field(default_factory=lambda: [0])
    wait: int = 1
    warmup: int = 1
    active: int = 3
    repeat: int = 1


class MetricsContext(_Model):
    enabled: bool = True
    port: int = 9400  # /metrics on every worker; /progress JSON on rank 0
    # /metrics stays up this long after training (the CRD defaults it to 15 s for cluster jobs)
    linger_seconds: int = Field(0, alias="lingerSeconds", ge=0)


# The rules the runtime implements (health.py); the CRD's enum is generated from this list.
HealthRuleName = Literal[
    "nan_loss",
    "exploding_gradients",
    "vanishing_gradients",
    "loss_not_decreasing",
    "overfitting",
    "low_gpu_utilization",
    "dataloader_bound",
]


class HealthRule(_Model):
    rule: HealthRuleName
    action: Literal["warn", "stop"] = "warn"
    params: dict[str, float] = Field(default_factory=dict)


class DataContext(_Model):
    uri: str | None = None
    options: dict[str, str] = Field(default_factory=dict)


class MlflowContext(_Model):
    tracking_uri: str = Field(alias="trackingUri")
    experiment: str = "trainforge"


class TrackingContext(_Model):
    mlflow: MlflowContext | None = None


class JobContext(_Model):
    """Everything a worker needs to know about its job, identical for all ranks."""

    api_version: str = Field(CONTRACT_VERSION, alias="apiVersion")
    job: JobRef
    image: str = ""
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    parallelism: ParallelismContext = Field(default_factory=ParallelismContext)
    rendezvous: RendezvousContext = Field(default_factory=RendezvousContext)
    checkpoint: CheckpointContext = Field(default_factory=CheckpointContext)
    artifacts: ArtifactsContext = Field(default_factory=ArtifactsContext)
    profiling: ProfilingContext = Field(default_factory=ProfilingContext)
    metrics: MetricsContext = Field(default_factory=MetricsContext)
    health: list[HealthRule] = Field(default_factory=list)
    data: DataContext = Field(default_factory=DataContext)
    tracking: TrackingContext = Field(default_factory=TrackingContext)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)

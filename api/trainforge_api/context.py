"""The JobContext every worker reads, and how a TrainingJob becomes one.

The operator renders a `JobContext` into the ConfigMap `<job>-context`, mounted at `CONTEXT_PATH`
in every worker pod; per-pod facts (rank, attempt) come from env, so the ConfigMap stays identical
across gang restarts. Local mode (`trainforge run --local`) builds the same object from a
TrainingJob file with the same function, so both validate and default a spec identically. The
context reuses the spec's own models: one definition of each part.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from trainforge_api.base import API_VERSION, Model
from trainforge_api.rules import runtime_spec, spec_problems
from trainforge_api.trainingjob import (
    DEFAULT_HYPERPARAMETERS_AS,
    Artifacts,
    Checkpoint,
    Data,
    HealthRule,
    HyperparameterChannels,
    Metrics,
    Parallelism,
    Profiling,
    Tracking,
    TrainingJobSpec,
)

CONTEXT_PATH = "/etc/trainforge/context.json"
MASTER_PORT = 29500

# Env names set by the operator on every worker container (besides the torch.distributed ones:
# MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, NODE_RANK, NNODES, NPROC_PER_NODE and PET_*).
ENV_CONTEXT_FILE = "TRAINFORGE_CONTEXT"  # path of the context JSON (default CONTEXT_PATH)
ENV_ATTEMPT = "TRAINFORGE_ATTEMPT"  # gang restart attempt, 0-based
ENV_POD_NAME = "TRAINFORGE_POD_NAME"
ENV_FAULT = "TRAINFORGE_FAULT"  # deterministic fault injection, see runtime docs
ENV_S3_ENDPOINT = "TRAINFORGE_S3_ENDPOINT"  # S3-compatible endpoint URL for s3:// URIs
ENV_DATA_DIR = "TRAINFORGE_DATA_DIR"  # where spec.data.uri was staged (the dataset initializer)
DATA_DIR = "/var/trainforge/data"  # its mount path in worker pods
# Set by the launcher for every rank (docs/byo-code.md): hyperparameters, per spec.hyperparametersAs
ENV_HP_PREFIX = "TRAINFORGE_HP_"  # one variable per hyperparameter, name upper-cased
ENV_HP_FILE = "TRAINFORGE_HP_FILE"  # the JSON file of all hyperparameters, typed


class InvalidSpecError(ValueError):
    """The TrainingJob spec cannot run; the message says which field to fix and how."""


class JobRef(Model):
    name: str
    namespace: str = "default"
    uid: str = ""


class ResolvedParallelism(Parallelism):
    """The spec's parallelism with procsPerNode resolved (a worker needs the number)."""

    procs_per_node: int = Field(1, ge=1, le=64, description="Local ranks per pod.")

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


class Rendezvous(Model):
    """Where and how the nodes meet. `static` (a fixed gang that never restarts inside a pod)
    stays the default for contexts written before elastic rendezvous existed; the operator
    writes `c10d` (torch elastic's dynamic rendezvous, hosted by node 0) for InPlace recovery
    and for elastic sizes. `maxRestarts` bounds how often a pod's agent restarts its processes
    in place."""

    master_addr: str = "127.0.0.1"
    master_port: int = MASTER_PORT
    backend: Literal["static", "c10d"] = "static"
    max_restarts: int = Field(0, ge=0, le=1000)


def rendezvous_for(spec: TrainingJobSpec, addr: str) -> Rendezvous:
    """The rendezvous a spec asks for: dynamic (c10d) when a pod may restart in place or the
    world may change size, with in-place restarts only under InPlace recovery."""
    in_place = spec.run_policy.recovery == "InPlace"
    dynamic = in_place or spec.parallelism.elastic
    return Rendezvous(
        master_addr=addr,
        backend="c10d" if dynamic else "static",
        max_restarts=spec.run_policy.max_restarts if in_place else 0,
    )


class WorkerMetrics(Metrics):
    """The spec's metrics, where port 0 also means "any free port" (tests, embedded runs) and
    lingering is off unless the operator set it: nobody scrapes a run started from code."""

    port: int = Field(9400, ge=0, le=65535, description="Metrics and progress port; 0: any.")
    linger_seconds: int = Field(0, ge=0, le=600)


class JobContext(Model):
    """Everything a worker needs to know about its job, identical for all ranks."""

    api_version: str = API_VERSION
    job: JobRef
    image: str = ""
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    hyperparameters_as: HyperparameterChannels = Field(
        default_factory=lambda: list(DEFAULT_HYPERPARAMETERS_AS)
    )
    parallelism: ResolvedParallelism = Field(default_factory=ResolvedParallelism)
    rendezvous: Rendezvous = Field(default_factory=Rendezvous)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    profiling: Profiling = Field(default_factory=Profiling)
    metrics: WorkerMetrics = Field(default_factory=WorkerMetrics)
    health: list[HealthRule] = Field(default_factory=list)
    data: Data = Field(default_factory=Data)
    tracking: Tracking = Field(default_factory=Tracking)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def context_problems(ctx: JobContext) -> list[str]:
    """The cross-field rules (rules.py) as far as a worker can check them from its context."""
    par = ctx.parallelism
    spec = runtime_spec(
        Parallelism.model_validate(par.model_dump()), par.procs_per_node, ctx.command, ctx.args
    )
    return spec_problems(spec)


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in ("spec", *e["loc"]))
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def parse_spec(manifest: Mapping[str, Any]) -> TrainingJobSpec:
    """Validate `manifest["spec"]` with the API models and the cross-field rules."""
    spec_raw = manifest.get("spec")
    if not isinstance(spec_raw, Mapping):
        raise InvalidSpecError("spec: missing; a TrainingJob needs a spec with at least 'command'")
    try:
        spec = TrainingJobSpec.model_validate(dict(spec_raw))
    except ValidationError as err:
        raise InvalidSpecError(_format_validation_error(err)) from None
    metadata = manifest.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    problems = spec_problems(spec, name if isinstance(name, str) else None)
    if problems:
        raise InvalidSpecError("; ".join(problems))
    return spec


def master_addr(name: str, namespace: str) -> str:
    """Stable DNS name of rank 0 through the job's headless Service."""
    return f"{name}-worker-0.{name}.{namespace}.svc"


def job_artifacts_uri(base: str | None, namespace: str, name: str) -> str | None:
    """Where this job's artifacts go: `<base>/<namespace>/<name>/`, so jobs that share one
    bucket prefix (the usual setup) never overwrite each other's models."""
    if not base:
        return base
    return f"{base.rstrip('/')}/{namespace}/{name}/"


def job_context_from_spec(
    spec: TrainingJobSpec,
    *,
    name: str,
    namespace: str = "default",
    uid: str = "",
    default_image: str = "",
    in_cluster: bool = False,
) -> JobContext:
    """Build the JobContext for an already validated spec (defaults applied)."""
    artifacts = spec.artifacts.model_copy(
        update={"uri": job_artifacts_uri(spec.artifacts.uri, namespace, name)}
    )
    return JobContext(
        job=JobRef(name=name, namespace=namespace, uid=uid),
        image=spec.image or default_image,
        command=list(spec.command),
        args=list(spec.args),
        hyperparameters=dict(spec.hyperparameters),
        hyperparameters_as=list(spec.hyperparameters_as),
        parallelism=ResolvedParallelism.model_validate(
            {**spec.parallelism.model_dump(), "procs_per_node": spec.procs_per_node}
        ),
        rendezvous=rendezvous_for(
            spec, master_addr(name, namespace) if in_cluster else "127.0.0.1"
        ),
        checkpoint=spec.checkpoint.model_copy(deep=True),
        artifacts=artifacts,
        profiling=spec.profiling.model_copy(deep=True),
        metrics=WorkerMetrics.model_validate(spec.metrics.model_dump()),
        health=[r.model_copy(deep=True) for r in spec.health.rules],
        data=spec.data.model_copy(deep=True),
        tracking=spec.tracking.model_copy(deep=True),
    )


def job_context_from_manifest(
    manifest: Mapping[str, Any], *, default_image: str = "", in_cluster: bool = False
) -> JobContext:
    """Validate a TrainingJob manifest and derive its JobContext.

    `in_cluster=False` (local mode) points the rendezvous at 127.0.0.1; the operator passes
    `in_cluster=True` for the headless-Service DNS name of rank 0. Raises InvalidSpecError.
    """
    spec = parse_spec(manifest)
    metadata = manifest.get("metadata") or {}
    name = str(metadata.get("name") or "")
    if not name:
        raise InvalidSpecError("metadata.name: missing; give the TrainingJob a name")
    return job_context_from_spec(
        spec,
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        uid=str(metadata.get("uid") or ""),
        default_image=default_image,
        in_cluster=in_cluster,
    )

"""Turn a TrainingJob manifest into the runtime's JobContext (the operator/runtime contract).

Used by the operator (rendered into the `<job>-context` ConfigMap) and by the runtime's local mode
(`trainforge run job.yaml --local`), so both validate and default a spec identically. Pure pydantic:
importable without kopf or kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from trainforge_runtime.contract import JobContext

from trainforge_operator.api import TrainingJobSpec, spec_problems

MASTER_PORT = 29500


class InvalidSpecError(ValueError):
    """The TrainingJob spec cannot run; the message says which field to fix and how."""


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
    p = spec.parallelism
    ctx: dict[str, Any] = {
        "job": {"name": name, "namespace": namespace, "uid": uid},
        "image": spec.image or default_image,
        "command": list(spec.command),
        "args": list(spec.args),
        "hyperparameters": dict(spec.hyperparameters),
        "parallelism": {
            "layout": p.layout,
            "nodes": p.nodes,
            "procsPerNode": spec.procs_per_node,
            "tensorParallel": p.tensor_parallel,
            "pipelineStages": p.pipeline_stages,
            "backend": p.backend,
        },
        "rendezvous": {
            "masterAddr": master_addr(name, namespace) if in_cluster else "127.0.0.1",
            "masterPort": MASTER_PORT,
        },
        "checkpoint": spec.checkpoint.model_dump(by_alias=True),
        "artifacts": {
            **spec.artifacts.model_dump(by_alias=True),
            "uri": job_artifacts_uri(spec.artifacts.uri, namespace, name),
        },
        "profiling": spec.profiling.model_dump(by_alias=True),
        "metrics": spec.metrics.model_dump(by_alias=True),
        "health": [r.model_dump(by_alias=True) for r in spec.health.rules],
        "data": spec.data.model_dump(by_alias=True),
        "tracking": spec.tracking.model_dump(by_alias=True),
    }
    return JobContext.model_validate(ctx)


def job_artifacts_uri(base: str | None, namespace: str, name: str) -> str | None:
    """Where this job's artifacts go: `<base>/<namespace>/<name>/`, so jobs that share one
    bucket prefix (the usual setup) never overwrite each other's models."""
    if not base:
        return base
    return f"{base.rstrip('/')}/{namespace}/{name}/"


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

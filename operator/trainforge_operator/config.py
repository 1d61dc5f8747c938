"""Operator configuration: a YAML file (the Helm ConfigMap) overlaid by `TRAINFORGE_*` env vars.

The file path comes from `TRAINFORGE_CONFIG` (the chart sets `/etc/trainforge/config.yaml`).
Keys are camelCase in YAML (`defaultImage`, `nodePools`, ...); env vars use the snake_case name
with the `TRAINFORGE_` prefix (`TRAINFORGE_DEFAULT_IMAGE`, `TRAINFORGE_LOG_LEVEL`). Env wins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel, to_snake
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "TRAINFORGE_CONFIG"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


class NodePool(BaseModel):
    """Where a named pool's pods go; set by the platform team, referenced by spec.nodePool."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    gpu_resource_name: str = DEFAULT_GPU_RESOURCE


class OperatorConfig(BaseSettings):
    """Everything the operator reads at startup."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINFORGE_",
        populate_by_name=True,
        alias_generator=to_camel,
        extra="ignore",
    )

    default_image: str = "trainforge/worker:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    namespaces: list[str] = Field(
        default_factory=list, description="Watched namespaces; empty means cluster-wide."
    )
    node_pools: dict[str, NodePool] = Field(default_factory=dict)
    default_node_pool: str = ""
    metrics_port: int = 8080
    health_port: int = 8081
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    peering: str | None = Field(None, description="kopf peering name; None runs standalone.")
    resync_seconds: float = Field(10.0, gt=0, description="Reconcile at least this often.")
    progress_interval_seconds: float = Field(5.0, gt=0, description="Rank-0 /progress polling.")
    progress_source: Literal["http", "annotation", "auto"] = Field(
        "auto", description="auto: the trainforge.io/progress pod annotation, else HTTP."
    )
    run_as_user: int = 1000
    api_concurrency: int = Field(
        16,
        ge=1,
        le=256,
        description="API requests (and HTTP connections) and reconcile passes at once.",
    )

    max_reconcile_errors: int = Field(
        5,
        ge=1,
        description="Consecutive unforeseen errors (not of the API or the network) in one job's "
        "passes before the job is marked Failed with reason ReconcileError and the error.",
    )
    image_pull_back_off_seconds: float = Field(
        300.0,
        ge=0,
        description="How long a worker may stay in ErrImagePull/ImagePullBackOff, counted from "
        "the pod's creation, before the job fails with reason ImagePullBackOff "
        "(InvalidImageName fails at once).",
    )
    kueue: bool = Field(
        False,
        description="Admit TrainingJobs labelled kueue.x-k8s.io/queue-name through Kueue: the "
        "operator creates a Kueue Workload per job and starts the gang only once Kueue admits it "
        "(docs/kueue.md). Needs Kueue installed and the chart's kueue.enabled RBAC.",
    )

    create_failure_seconds: float = Field(
        300.0,
        ge=0,
        description="How long the API server may keep refusing to create a job's children for a "
        "reason outside the object (403: a missing ServiceAccount or PriorityClass, a quota, a "
        "policy; 429, 5xx), counted from the first refusal, before the job fails with reason "
        "CreateFailed; a job's runPolicy.maxPendingSeconds, when set, is used instead.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def pool(self, name: str | None) -> NodePool | None:
        """The named pool, the default pool, or None when no pool applies."""
        key = name or self.default_node_pool
        if not key:
            return None
        if key not in self.node_pools:
            known = ", ".join(sorted(self.node_pools)) or "none configured"
            raise KeyError(
                f"spec.nodePool '{key}' is not configured in the operator (known: {known})"
            )
        return self.node_pools[key]


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by TRAINFORGE_CONFIG (absent variable: no file)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            return {}
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the operator config must be a YAML mapping")
        # Field names, not aliases, so env values (keyed by field name) override file values.
        return {to_snake(str(k)): v for k, v in data.items()}


def load_config(**overrides: Any) -> OperatorConfig:
    """Load the config (file, then env, then explicit overrides)."""
    return OperatorConfig(**overrides)

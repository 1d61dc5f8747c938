"""Pure builders of a TrainingJob's children: headless Service, context ConfigMap, worker pods.

Every function returns plain dicts computed only from its arguments (no API calls, no clock), so
the desired state is unit-testable by comparing whole objects. Names are deterministic
(`<job>`, `<job>-context`, `<job>-worker-<i>`) which makes creation idempotent across retries and
operator restarts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from trainforge_api.base import API_VERSION
from trainforge_api.context import (
    CONTEXT_PATH,
    DATA_DIR,
    ENV_ATTEMPT,
    ENV_CONTEXT_FILE,
    ENV_DATA_DIR,
    ENV_POD_NAME,
    ENV_S3_ENDPOINT,
    MASTER_PORT,
    job_context_from_spec,
    master_addr,
)
from trainforge_api.launchers import (
    BOOT_DIR,
    INSTALL_COMMAND,
    RUNTIME_COMMAND,
    STANDALONE_COMMAND,
    resolve_launcher,
)
from trainforge_api.trainingjob import KIND, SecretRef, TrainingJobSpec
from trainforge_operator.config import DEFAULT_GPU_RESOURCE, OperatorConfig
from trainforge_operator.names import (
    CONTAINER,
    LABEL_ATTEMPT,
    LABEL_INDEX,
    LABEL_JOB,
    LABEL_MANAGED,
    LABEL_ROLE,
    LABEL_UID,
    MANAGED_BY,
    QUEUE_LABEL,
    context_name,
    service_name,
    worker_name,
)

Obj = dict[str, Any]

CONTEXT_VOLUME = "job-context"
SHM_VOLUME = "dshm"
DATA_VOLUME = "trainforge-data"
STAGE_DATA_CONTAINER = "stage-data"
LAUNCHER_VOLUME = "trainforge-launcher"
LAUNCHER_CONTAINER = "trainforge-launcher"
# The install step only copies a few files; it must not inflate the pod's effective request.
LAUNCHER_RESOURCES = {"cpu": "100m", "memory": "64Mi"}
RESERVED_ENV = frozenset(
    {
        "MASTER_ADDR",
        "MASTER_PORT",
        "WORLD_SIZE",
        "RANK",
        "NODE_RANK",
        "NNODES",
        "NPROC_PER_NODE",
        "PET_NNODES",
        "PET_NODE_RANK",
        "PET_NPROC_PER_NODE",
        "PET_MASTER_ADDR",
        "PET_MASTER_PORT",
        ENV_ATTEMPT,
        ENV_POD_NAME,
        ENV_CONTEXT_FILE,
    }
)


@dataclass(frozen=True)
class JobRef:
    """The owner facts every child needs."""

    name: str
    namespace: str
    uid: str
    labels: dict[str, str]

    @classmethod
    def from_body(cls, body: Obj) -> JobRef:
        meta = body.get("metadata", {})
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            uid=meta.get("uid", ""),
            labels=dict(meta.get("labels") or {}),
        )


def owner_reference(job: JobRef) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.name,
        "uid": job.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_labels(job: JobRef) -> dict[str, str]:
    labels = {LABEL_JOB: job.name, LABEL_UID: job.uid, LABEL_MANAGED: MANAGED_BY}
    if QUEUE_LABEL in job.labels:
        labels[QUEUE_LABEL] = job.labels[QUEUE_LABEL]
    return labels


def _metadata(job: JobRef, name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "name": name,
        "namespace": job.namespace,
        "labels": {**job_labels(job), **(labels or {})},
        "ownerReferences": [owner_reference(job)],
    }


def build_service(job: JobRef) -> Obj:
    """Headless Service giving every worker a stable DNS name, ready or not (rendezvous)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(job, service_name(job.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB: job.name, LABEL_UID: job.uid},
            "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
        },
    }


def build_configmap(job: JobRef, spec: TrainingJobSpec, config: OperatorConfig) -> Obj:
    """ConfigMap with the JobContext JSON, identical for every pod and attempt."""
    ctx = job_context_from_spec(
        spec,
        name=job.name,
        namespace=job.namespace,
        uid=job.uid,
        default_image=config.default_image,
        in_cluster=True,
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(job, context_name(job.name)),
        "data": {"context.json": ctx.to_json()},
    }


def _env(job: JobRef, spec: TrainingJobSpec, index: int, attempt: int) -> list[Obj]:
    addr = master_addr(job.name, job.namespace)
    nodes, procs = spec.parallelism.nodes, spec.procs_per_node
    pairs = {
        "MASTER_ADDR": addr,
        "MASTER_PORT": str(MASTER_PORT),
        "WORLD_SIZE": str(nodes * procs),
        "RANK": str(index),
        "NODE_RANK": str(index),
        "NNODES": str(nodes),
        "NPROC_PER_NODE": str(procs),
        "PET_NNODES": str(nodes),
        "PET_NODE_RANK": str(index),
        "PET_NPROC_PER_NODE": str(procs),
        "PET_MASTER_ADDR": addr,
        "PET_MASTER_PORT": str(MASTER_PORT),
        ENV_ATTEMPT: str(attempt),
        ENV_CONTEXT_FILE: CONTEXT_PATH,
    }
    env: list[Obj] = [{"name": k, "value": v} for k, v in pairs.items()]
    env.append({"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    if spec.artifacts.s3_endpoint:
        env.append({"name": ENV_S3_ENDPOINT, "value": spec.artifacts.s3_endpoint})
    secret = spec.artifacts.credentials_secret
    if secret is not None:
        for var, key in (
            ("AWS_ACCESS_KEY_ID", secret.access_key_id_key),
            ("AWS_SECRET_ACCESS_KEY", secret.secret_access_key_key),
        ):
            ref = {"secretKeyRef": {"name": secret.name, "key": key}}
            env.append({"name": var, "valueFrom": ref})
    # User env comes last but may not override the rendezvous contract.
    env.extend(copy.deepcopy(e) for e in spec.env if e.get("name") not in RESERVED_ENV)
    return env


def _resources(spec: TrainingJobSpec, gpu_resource: str) -> Obj:
    r = spec.resources
    amounts: dict[str, str] = {"cpu": r.cpu, "memory": r.memory}
    if r.gpus > 0:
        amounts[gpu_resource] = str(r.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def gpu_resource_name(spec: TrainingJobSpec, config: OperatorConfig) -> str:
    """The spec's explicit name, else the pool's, else nvidia.com/gpu."""
    if spec.resources.gpu_resource_name:
        return spec.resources.gpu_resource_name
    pool = config.pool(spec.node_pool)
    return pool.gpu_resource_name if pool is not None else DEFAULT_GPU_RESOURCE


def _placement(spec: TrainingJobSpec, config: OperatorConfig) -> Obj:
    """Pool placement first, then the spec's raw overrides on top."""
    pool = config.pool(spec.node_pool)
    selector: dict[str, str] = dict(pool.node_selector) if pool else {}
    selector.update(spec.placement.node_selector)
    tolerations = copy.deepcopy(pool.tolerations) if pool else []
    tolerations.extend(copy.deepcopy(t) for t in spec.placement.tolerations)
    affinity = copy.deepcopy(spec.placement.affinity or (pool.affinity if pool else {}))
    out: Obj = {}
    if selector:
        out["nodeSelector"] = selector
    if tolerations:
        out["tolerations"] = tolerations
    if affinity:
        out["affinity"] = affinity
    if spec.placement.priority_class_name:
        out["priorityClassName"] = spec.placement.priority_class_name
    if spec.placement.scheduler_name:
        out["schedulerName"] = spec.placement.scheduler_name
    return out


def _secret_env(secret: SecretRef | None) -> list[Obj]:
    """AWS_* credentials as secretKeyRef env: the values never appear in any object we write."""
    if secret is None:
        return []
    return [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}}}
        for var, key in (
            ("AWS_ACCESS_KEY_ID", secret.access_key_id_key),
            ("AWS_SECRET_ACCESS_KEY", secret.secret_access_key_key),
        )
    ]


def add_data_staging(spec: TrainingJobSpec, config: OperatorConfig, pod_spec: Obj) -> None:
    """With spec.data.uri: the `stage-data` init container (the trainforge worker image, so any
    training image works) copies the data into an emptyDir that the training container sees at
    $TRAINFORGE_DATA_DIR; training starts only once it exited 0."""
    if not spec.data.uri:
        return
    mount = {"name": DATA_VOLUME, "mountPath": DATA_DIR}
    data_env = {"name": ENV_DATA_DIR, "value": DATA_DIR}
    training = pod_spec["containers"][0]
    training["env"] = [e for e in training["env"] if e.get("name") != ENV_DATA_DIR]
    training["env"].append(dict(data_env))
    training["volumeMounts"].append(dict(mount))
    env: list[Obj] = [{"name": ENV_CONTEXT_FILE, "value": CONTEXT_PATH}, data_env]
    if spec.data.s3_endpoint:
        env.append({"name": ENV_S3_ENDPOINT, "value": spec.data.s3_endpoint})
    cpu_memory = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    stager: Obj = {
        "name": STAGE_DATA_CONTAINER,
        "image": config.default_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "trainforge_runtime.stage_data"],
        "env": env + _secret_env(spec.data.credentials_secret),
        "resources": {"requests": dict(cpu_memory), "limits": dict(cpu_memory)},
        "volumeMounts": [
            {"name": CONTEXT_VOLUME, "mountPath": "/etc/trainforge", "readOnly": True},
            mount,
        ],
        "securityContext": copy.deepcopy(training["securityContext"]),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec.setdefault("initContainers", []).append(stager)
    empty_dir = {"sizeLimit": spec.data.size_limit} if spec.data.size_limit else {}
    pod_spec["volumes"].append({"name": DATA_VOLUME, "emptyDir": empty_dir})


def add_standalone_launcher(spec: TrainingJobSpec, config: OperatorConfig, pod_spec: Obj) -> None:
    """spec.launcher resolved to standalone: the `trainforge-launcher` init container (the
    operator's worker image) installs trainforge's standard-library launcher into an emptyDir,
    and the training container runs it with its own python3, so the image needs no trainforge."""
    if resolve_launcher(spec, config.default_image) != "standalone":
        return
    mount = {"name": LAUNCHER_VOLUME, "mountPath": BOOT_DIR}
    training = pod_spec["containers"][0]
    training["command"] = list(STANDALONE_COMMAND)
    training["volumeMounts"].append({**mount, "readOnly": True})
    installer: Obj = {
        "name": LAUNCHER_CONTAINER,
        "image": config.default_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": list(INSTALL_COMMAND),
        "resources": {"requests": dict(LAUNCHER_RESOURCES), "limits": dict(LAUNCHER_RESOURCES)},
        "volumeMounts": [dict(mount)],
        "securityContext": copy.deepcopy(training["securityContext"]),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec.setdefault("initContainers", []).insert(0, installer)
    pod_spec["volumes"].append({"name": LAUNCHER_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})


def _security_context(spec: TrainingJobSpec, config: OperatorConfig) -> Obj:
    """The restricted Pod Security Standard's pod part, with the keys of
    podTemplate.securityContext laid over it: setting only `fsGroup` (say) must not silently
    drop non-root and seccomp. The user's `runAsUser` becomes the default group too."""
    user = copy.deepcopy(spec.pod_template.security_context)
    uid = user.get("runAsUser", config.run_as_user)
    defaults: Obj = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {**defaults, **user}


def build_worker_pod(
    job: JobRef, spec: TrainingJobSpec, config: OperatorConfig, index: int, attempt: int
) -> Obj:
    """Worker pod `<job>-worker-<index>` of gang attempt `attempt`."""
    tmpl = spec.pod_template
    labels = {
        **tmpl.labels,
        **job_labels(job),
        LABEL_INDEX: str(index),
        LABEL_ATTEMPT: str(attempt),
        LABEL_ROLE: "master" if index == 0 else "worker",
    }
    container: Obj = {
        "name": CONTAINER,
        "image": spec.image or config.default_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": list(RUNTIME_COMMAND),
        "env": _env(job, spec, index, attempt),
        "ports": [
            {"name": "rendezvous", "containerPort": MASTER_PORT},
            {"name": "metrics", "containerPort": spec.metrics.port},
        ],
        "resources": _resources(spec, gpu_resource_name(spec, config)),
        "volumeMounts": [
            {"name": CONTEXT_VOLUME, "mountPath": "/etc/trainforge", "readOnly": True},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},  # noqa: S108 (memory emptyDir)
            *copy.deepcopy(tmpl.volume_mounts),
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.working_dir:
        container["workingDir"] = spec.working_dir
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "hostname": worker_name(job.name, index),
        "subdomain": service_name(job.name),
        "enableServiceLinks": False,
        "securityContext": _security_context(spec, config),
        "containers": [container],
        "volumes": [
            {"name": CONTEXT_VOLUME, "configMap": {"name": context_name(job.name)}},
            {
                "name": SHM_VOLUME,
                "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shared_memory},
            },
            *copy.deepcopy(tmpl.volumes),
        ],
        **_placement(spec, config),
    }
    if tmpl.service_account_name:
        pod_spec["serviceAccountName"] = tmpl.service_account_name
    else:
        # Workers never call the Kubernetes API: no token unless the user names an account.
        pod_spec["automountServiceAccountToken"] = False
    if tmpl.image_pull_secrets:
        pod_spec["imagePullSecrets"] = copy.deepcopy(tmpl.image_pull_secrets)
    add_data_staging(spec, config, pod_spec)
    add_standalone_launcher(spec, config, pod_spec)
    meta = _metadata(job, worker_name(job.name, index), labels)
    meta["labels"] = labels
    if tmpl.annotations:
        meta["annotations"] = dict(tmpl.annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


def build_gang(
    job: JobRef, spec: TrainingJobSpec, config: OperatorConfig, attempt: int
) -> list[Obj]:
    """All worker pods of one attempt, rank 0 first."""
    return [build_worker_pod(job, spec, config, i, attempt) for i in range(spec.parallelism.nodes)]

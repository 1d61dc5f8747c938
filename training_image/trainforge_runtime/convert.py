"""`trainforge convert pytorchjob.yaml`: a Kubeflow PyTorchJob (kubeflow.org/v1) as a TrainingJob.

`convert(pytorchjob)` is pure: it returns the TrainingJob manifest and one warning per field it
could not carry over, each naming the field by its path in the PyTorchJob and saying what
trainforge does instead. The result is validated with the API's own `parse_spec` (schema and
cross-field rules), so a converted job is one `kubectl apply` accepts. The field-by-field table
is docs/convert-pytorchjob.md.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainforge_api.base import API_VERSION
from trainforge_api.context import InvalidSpecError, parse_spec
from trainforge_api.trainingjob import KIND

Obj = dict[str, Any]

KUBEFLOW_KIND = "PyTorchJob"
KUBEFLOW_GROUP = "kubeflow.org"
# Kubeflow's defaults: the training container's name and the rendezvous port it declares.
KUBEFLOW_CONTAINER = "pytorch"
KUBEFLOW_PORT_NAME = "pytorchjob-port"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})

# Pod spec fields with a TrainingJob home: pod-spec key -> (section, key) in the TrainingJob spec.
POD_FIELDS: dict[str, tuple[str, str]] = {
    "nodeSelector": ("placement", "nodeSelector"),
    "tolerations": ("placement", "tolerations"),
    "affinity": ("placement", "affinity"),
    "priorityClassName": ("placement", "priorityClassName"),
    "schedulerName": ("placement", "schedulerName"),
    "volumes": ("podTemplate", "volumes"),
    "serviceAccountName": ("podTemplate", "serviceAccountName"),
    "securityContext": ("podTemplate", "securityContext"),
    "imagePullSecrets": ("podTemplate", "imagePullSecrets"),
}
# Pod spec fields the operator sets itself; a value in the PyTorchJob is not an error.
POD_FIELDS_OWNED = frozenset({"containers", "restartPolicy"})
CONTAINER_FIELDS_OWNED = frozenset({"name", "ports"})
CORE_RESOURCES = frozenset({"cpu", "memory"})


class ConversionError(ValueError):
    """The PyTorchJob cannot become a valid TrainingJob; the message says which field and why."""


@dataclass
class _Conversion:
    """The TrainingJob spec being built and the warnings collected on the way."""

    spec: Obj = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    torchrun: Unwrapped | None = None  # the training container's torchrun, taken apart

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")

    def put(self, section: str, key: str, value: Any) -> None:
        self.spec.setdefault(section, {})[key] = value


def convert(pytorchjob: Obj) -> tuple[Obj, list[str]]:
    """The TrainingJob for a PyTorchJob manifest, and a warning per field that did not map.

    Raises ConversionError when the input is no PyTorchJob or the result would be invalid."""
    _check_kind(pytorchjob)
    spec = pytorchjob.get("spec") or {}
    if not isinstance(spec, dict):
        raise ConversionError("spec: not a mapping")
    conv = _Conversion()
    replicas = _replica_specs(spec, conv)
    role, template = _template_source(replicas)
    conv.spec.setdefault("parallelism", {})["nodes"] = _nodes(replicas)
    _compare_templates(replicas, conv)
    _restart_policy(replicas[role].get("restartPolicy"), f"{_rs(role)}.restartPolicy", conv)
    _pod(template, f"{_rs(role)}.template", conv)
    _nproc(spec, conv)
    _run_policy(spec.get("runPolicy") or {}, conv)
    _elastic(spec.get("elasticPolicy") or {}, conv)
    for key in sorted(set(spec) - {"pytorchReplicaSpecs", "runPolicy", "elasticPolicy"}):
        if key != "nprocPerNode":
            conv.warn(f"spec.{key}", "unknown PyTorchJob field; not converted")
    manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": _metadata(pytorchjob, conv)}
    manifest["spec"] = conv.spec
    try:
        parse_spec(manifest)
    except InvalidSpecError as err:
        raise ConversionError(f"the converted TrainingJob is not valid: {err}") from None
    return manifest, conv.warnings


def _check_kind(obj: Obj) -> None:
    if not isinstance(obj, dict) or obj.get("kind") != KUBEFLOW_KIND:
        raise ConversionError(f"kind: expected {KUBEFLOW_KIND}, got {obj.get('kind')!r}")
    group = str(obj.get("apiVersion") or "").split("/")[0]
    if group != KUBEFLOW_GROUP:
        raise ConversionError(f"apiVersion: expected {KUBEFLOW_GROUP}/v1, got {group!r}")


def _rs(role: str) -> str:
    return f"spec.pytorchReplicaSpecs.{role}"


def _replica_specs(spec: Obj, conv: _Conversion) -> dict[str, Obj]:
    """Master and Worker; any other replica type is reported and left out."""
    specs = spec.get("pytorchReplicaSpecs") or {}
    if not isinstance(specs, dict) or not ({"Master", "Worker"} & set(specs)):
        raise ConversionError("spec.pytorchReplicaSpecs: needs a Master or a Worker replica spec")
    for role in sorted(set(specs) - {"Master", "Worker"}):
        conv.warn(_rs(role), "replica type not supported; only Master and Worker become nodes")
    out = {role: specs[role] or {} for role in ("Master", "Worker") if role in specs}
    master = out.get("Master")
    if master is not None and int(master.get("replicas", 1)) != 1:
        raise ConversionError(f"{_rs('Master')}.replicas: a PyTorchJob has exactly one Master")
    return out


def _nodes(replicas: dict[str, Obj]) -> int:
    """Master (rank 0) plus Workers: each replica is one pod, one node of the gang."""
    return sum(int(r.get("replicas", 1)) for r in replicas.values())


def _template_source(replicas: dict[str, Obj]) -> tuple[str, Obj]:
    """Every TrainingJob node shares one pod template: the Master's, else the Worker's."""
    role = "Master" if "Master" in replicas else "Worker"
    template = replicas[role].get("template") or {}
    if not (template.get("spec") or {}).get("containers"):
        raise ConversionError(f"{_rs(role)}.template.spec.containers: no container")
    return role, template


def _compare_templates(replicas: dict[str, Obj], conv: _Conversion) -> None:
    """Warn where the Worker's template says something else than the Master's (which wins)."""
    if len(replicas) < 2:
        return
    master = replicas["Master"].get("template") or {}
    worker = replicas["Worker"].get("template") or {}
    differ = _differences(master, worker, "template")
    for path in differ:
        conv.warn(
            f"{_rs('Worker')}.{path}", "differs from the Master's; every node uses the Master's"
        )
    if replicas["Master"].get("restartPolicy") != replicas["Worker"].get("restartPolicy"):
        conv.warn(f"{_rs('Worker')}.restartPolicy", "differs from the Master's; the Master's used")


def _differences(a: Any, b: Any, path: str) -> list[str]:
    """Paths (two levels into a pod template's spec and its containers) where a and b differ."""
    if a == b:
        return []
    if path.count(".") >= 3 or not (isinstance(a, dict) and isinstance(b, dict)):
        return [path]
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        out.extend(_differences(a.get(key), b.get(key), f"{path}.{key}"))
    return out


def _restart_policy(policy: str | None, path: str, conv: _Conversion) -> None:
    """Kubeflow restarts a failed pod in place; trainforge restarts the whole gang, only for
    retryable exit codes (docs/architecture.md), up to runPolicy.maxRestarts."""
    if policy == "Never":
        conv.put("runPolicy", "maxRestarts", 0)
    elif policy in ("OnFailure", "Always"):
        conv.warn(
            path,
            f"{policy}: trainforge restarts the whole gang, and only for retryable exit codes "
            "(75, 128+N, preemption); list other codes in spec.runPolicy.retryableExitCodes",
        )
    elif policy not in (None, "ExitCode"):
        conv.warn(path, f"unknown restart policy {policy!r}; not converted")


def _pod(template: Obj, path: str, conv: _Conversion) -> None:
    meta = template.get("metadata") or {}
    if meta.get("labels"):
        conv.put("podTemplate", "labels", dict(meta["labels"]))
    if meta.get("annotations"):
        conv.put("podTemplate", "annotations", dict(meta["annotations"]))
    for key in sorted(set(meta) - {"labels", "annotations"}):
        conv.warn(f"{path}.metadata.{key}", "not converted (the operator names its pods)")
    pod = copy.deepcopy(template.get("spec") or {})
    containers = pod["containers"]
    index = next((i for i, c in enumerate(containers) if c.get("name") == KUBEFLOW_CONTAINER), 0)
    for i, other in enumerate(containers):
        if i != index:
            conv.warn(
                f"{path}.spec.containers[{i}]",
                f"extra container {other.get('name')!r} not converted; a TrainingJob pod runs "
                "one training container",
            )
    shm = _container(containers[index], f"{path}.spec.containers[{index}]", conv)
    _pod_spec(pod, shm, f"{path}.spec", conv)


def _container(container: Obj, path: str, conv: _Conversion) -> str | None:
    """The training container's fields; returns the name of a volume mounted at /dev/shm."""
    simple = {"image": "image", "command": "command", "args": "args", "workingDir": "workingDir"}
    for src, dst in simple.items():
        if container.get(src):
            conv.spec[dst] = copy.deepcopy(container[src])
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if starts_torchrun(argv):
        conv.torchrun = unwrap_torchrun(argv)
        conv.spec["command"], conv.spec["args"] = conv.torchrun.command, conv.torchrun.args
        if not conv.spec["args"]:
            del conv.spec["args"]
        dropped = " ".join(conv.torchrun.dropped) or "none"
        conv.warn(
            f"{path}.command",
            f"torchrun replaced by {' '.join(conv.torchrun.command)}: trainforge is the launcher "
            f"and sets the rendezvous itself (docs/byo-code.md); torchrun flags dropped: {dropped}",
        )
    if container.get("env"):
        conv.spec["env"] = copy.deepcopy(container["env"])
    _resources(container.get("resources") or {}, f"{path}.resources", conv)
    shm, mounts = None, []
    for mount in container.get("volumeMounts") or []:
        if mount.get("mountPath") == "/dev/shm":  # noqa: S108 (a path, not a temp file)
            shm = mount.get("name")
        else:
            mounts.append(copy.deepcopy(mount))
    if mounts:
        conv.put("podTemplate", "volumeMounts", mounts)
    for i, port in enumerate(container.get("ports") or []):
        if port.get("name") != KUBEFLOW_PORT_NAME:
            conv.warn(
                f"{path}.ports[{i}]",
                "not converted; workers declare the rendezvous and metrics ports themselves",
            )
    handled = {"image", "command", "args", "workingDir", "env", "resources", "volumeMounts"}
    for key in sorted(set(container) - handled - CONTAINER_FIELDS_OWNED):
        conv.warn(f"{path}.{key}", "not converted; a TrainingJob has no field for it")
    return shm


def _resources(resources: Obj, path: str, conv: _Conversion) -> None:
    """trainforge requests what it limits: limits win, requests fill in what limits omit."""
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    merged = {**requests, **limits}
    for key in sorted(set(requests) & set(limits)):
        if str(requests[key]) != str(limits[key]):
            conv.warn(
                f"{path}.requests.{key}",
                f"differs from the limit; trainforge requests the limit ({limits[key]})",
            )
    for key in ("cpu", "memory"):
        if key in merged:
            conv.put("resources", key, str(merged[key]))
    gpus = [k for k in merged if k.endswith("/gpu")]
    for key in gpus[:1]:
        conv.put("resources", "gpus", int(merged[key]))
        if key != "nvidia.com/gpu":
            conv.put("resources", "gpuResourceName", key)
    for key in sorted(set(merged) - CORE_RESOURCES - set(gpus[:1])):
        conv.warn(
            f"{path}.limits.{key}", "resource not converted; trainforge sets cpu, memory, GPUs"
        )
    for key in sorted(set(resources) - {"limits", "requests"}):
        conv.warn(f"{path}.{key}", "not converted")


def _pod_spec(pod: Obj, shm: str | None, path: str, conv: _Conversion) -> None:
    """Pod-level fields into placement and podTemplate; a memory emptyDir at /dev/shm becomes
    resources.sharedMemory (trainforge mounts its own)."""
    volumes = []
    for volume in pod.get("volumes") or []:
        if shm is not None and volume.get("name") == shm and "emptyDir" in volume:
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            if size:
                conv.put("resources", "sharedMemory", str(size))
        else:
            volumes.append(volume)
    pod["volumes"] = volumes
    for key, (section, dst) in POD_FIELDS.items():
        if pod.get(key):
            conv.put(section, dst, copy.deepcopy(pod[key]))
    if not pod.get("securityContext"):
        conv.warn(
            f"{path}.securityContext",
            "not set: trainforge runs workers as non-root (uid 1000) by default; if the image "
            "needs root, set spec.podTemplate.securityContext",
        )
    for key in sorted(set(pod) - set(POD_FIELDS) - POD_FIELDS_OWNED):
        if pod[key] not in (None, [], {}, ""):
            conv.warn(f"{path}.{key}", "not converted; a TrainingJob has no field for it")


def _nproc(spec: Obj, conv: _Conversion) -> None:
    """nprocPerNode (auto|cpu|gpu|N) into parallelism.procsPerNode, which defaults to the pod's
    GPUs, or 1 without GPUs."""
    value = spec.get("nprocPerNode")
    path = "spec.nprocPerNode"
    if value is None:
        legacy = (spec.get("elasticPolicy") or {}).get("nProcPerNode")
        value, path = (legacy, "spec.elasticPolicy.nProcPerNode") if legacy else ("auto", path)
    gpus = int((conv.spec.get("resources") or {}).get("gpus", 0))
    text = str(value)
    if conv.torchrun is not None and conv.torchrun.nproc and "nprocPerNode" not in spec:
        text = conv.torchrun.nproc  # torchrun's --nproc-per-node, when the job set no other
    if text.isdigit():
        conv.spec["parallelism"]["procsPerNode"] = int(text)
    elif text == "gpu" and gpus == 0:
        conv.warn(path, "gpu, but the pod requests no GPUs; trainforge runs 1 process per node")
    elif text == "cpu":
        cpu = str((conv.spec.get("resources") or {}).get("cpu", ""))
        if cpu.isdigit():
            conv.spec["parallelism"]["procsPerNode"] = int(cpu)
        else:
            conv.warn(path, "cpu needs a whole CPU count; set spec.parallelism.procsPerNode")
    elif text == "auto" and gpus == 0 and "nprocPerNode" in spec:
        conv.warn(
            path,
            "auto on CPU: torchrun starts one process per CPU, trainforge 1 per node; set "
            "spec.parallelism.procsPerNode if you need more",
        )
    elif text not in ("auto", "gpu"):
        conv.warn(path, f"unknown value {text!r}; trainforge runs its default")
    procs = int(conv.spec["parallelism"].get("procsPerNode") or gpus or 1)
    if procs > 1 and conv.torchrun is None:
        conv.warn(
            path,
            f"{procs} processes per pod with a command that does not start torchrun: trainforge "
            "starts them itself, each with its own RANK, LOCAL_RANK and WORLD_SIZE",
        )


@dataclass(frozen=True)
class Unwrapped:
    """A torchrun command line taken apart: what to run instead, and what was dropped."""

    command: list[str]
    args: list[str]
    nproc: str | None
    dropped: list[str]


# torchrun's own options that take a value (both spellings); every other option is a switch.
TORCHRUN_VALUE_FLAGS = frozenset(
    f"--{name}{sep}"
    for sep in ("", "=")
    for name in (
        "nnodes",
        "nproc_per_node",
        "nproc-per-node",
        "rdzv_backend",
        "rdzv-backend",
        "rdzv_endpoint",
        "rdzv-endpoint",
        "rdzv_id",
        "rdzv-id",
        "rdzv_conf",
        "rdzv-conf",
        "max_restarts",
        "max-restarts",
        "monitor_interval",
        "monitor-interval",
        "start_method",
        "start-method",
        "role",
        "node_rank",
        "node-rank",
        "master_addr",
        "master-addr",
        "master_port",
        "master-port",
        "local_addr",
        "local-addr",
        "log_dir",
        "log-dir",
        "redirects",
        "tee",
        "local_ranks_filter",
        "local-ranks-filter",
        "logs_specs",
        "logs-specs",
        "event_log_handler",
        "event-log-handler",
        "signals_to_handle",
        "signals-to-handle",
    )
) | {"-r", "-t"}


def unwrap_torchrun(argv: list[str]) -> Unwrapped:
    """`torchrun [opts] script.py [args]` (or `python -m torch.distributed.run ...`) as the
    plain command trainforge launches once per process: `python script.py [args]`, keeping the
    script's own arguments and torchrun's --nproc-per-node (it maps to procsPerNode)."""
    rest = list(argv)
    while (
        rest
        and not rest[0].endswith("torchrun")
        and rest[0] not in ("torch.distributed.run", "torch.distributed.launch")
    ):
        rest.pop(0)  # python, -u, -m before the module name
    rest = rest[1:]
    dropped: list[str] = []
    nproc: str | None = None
    module = no_python = False
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        name, eq, value = flag.partition("=")
        if not eq and (f"{name}" in TORCHRUN_VALUE_FLAGS) and rest:
            value = rest.pop(0)
            flag = f"{flag} {value}"
        if name in ("--nproc_per_node", "--nproc-per-node"):
            nproc = value
        module = module or name in ("-m", "--module")
        no_python = no_python or name in ("--no_python", "--no-python")
        dropped.append(flag)
    script, args = (rest[0], rest[1:]) if rest else ("train.py", [])
    if no_python:
        command = [script]
    elif module:
        command = ["python", "-m", script]
    else:
        command = ["python", script]
    return Unwrapped(command, args, nproc, dropped)


def starts_torchrun(command: list[str]) -> bool:
    """`torchrun ...` or `python -m torch.distributed.run|launch ...`."""
    if command and command[0].rsplit("/", 1)[-1] == "torchrun":
        return True
    return any(m in command for m in ("torch.distributed.run", "torch.distributed.launch"))


def _run_policy(policy: Obj, conv: _Conversion) -> None:
    direct = {
        "cleanPodPolicy": "cleanPodPolicy",
        "ttlSecondsAfterFinished": "ttlSecondsAfterFinished",
        "activeDeadlineSeconds": "activeDeadlineSeconds",
        "backoffLimit": "maxRestarts",
        "suspend": "suspend",
    }
    for src, dst in direct.items():
        if policy.get(src) is not None:
            conv.put("runPolicy", dst, policy[src])
    if policy.get("suspend") is False:
        conv.spec["runPolicy"].pop("suspend")
    _scheduling(policy.get("schedulingPolicy") or {}, conv)
    for key in sorted(set(policy) - set(direct) - {"schedulingPolicy"}):
        conv.warn(f"spec.runPolicy.{key}", "not converted; the trainforge operator manages the job")


def _scheduling(policy: Obj, conv: _Conversion) -> None:
    """Gang scheduling is built in (all nodes or none); queue and timeout map to Kueue and
    maxPendingSeconds."""
    path = "spec.runPolicy.schedulingPolicy"
    if policy.get("queue"):
        conv.labels[QUEUE_LABEL] = str(policy["queue"])
    if policy.get("priorityClass"):
        conv.put("placement", "priorityClassName", policy["priorityClass"])
    if policy.get("scheduleTimeoutSeconds"):
        conv.put("runPolicy", "maxPendingSeconds", int(policy["scheduleTimeoutSeconds"]))
    if policy.get("minAvailable") is not None:
        conv.warn(f"{path}.minAvailable", "not converted; trainforge always gangs every node")
    for key in sorted(set(policy) - {"queue", "priorityClass", "scheduleTimeoutSeconds"}):
        if key != "minAvailable":
            conv.warn(f"{path}.{key}", "not converted")


def _elastic(policy: Obj, conv: _Conversion) -> None:
    """minReplicas/maxReplicas become parallelism.minNodes/maxNodes (an elastic data-parallel
    world, resized with `kubectl scale`); the rendezvous fields do not map: trainforge runs its
    own c10d rendezvous on node 0."""
    reasons = {
        "metrics": "no built-in autoscaling: point an HPA at the TrainingJob's scale subresource, "
        "or resize it with `kubectl scale tj/<name> --replicas=N`",
        "maxRestarts": "see spec.runPolicy.maxRestarts (each pod's agent restarts in place)",
    }
    _elastic_sizes(policy, conv)
    for key in sorted(policy):
        if key in ("nProcPerNode", "minReplicas", "maxReplicas"):
            continue
        why = reasons.get(key, "trainforge runs its own c10d rendezvous (node 0, port 29500)")
        conv.warn(f"spec.elasticPolicy.{key}", f"not converted; {why}")


def _elastic_sizes(policy: Obj, conv: _Conversion) -> None:
    """The elastic bounds, when they hold the converted nodes; else a warning and a fixed gang."""
    par = conv.spec.setdefault("parallelism", {})
    nodes = int(par.get("nodes", 1))
    low, high = policy.get("minReplicas"), policy.get("maxReplicas")
    if low is None and high is None:
        return
    lo = int(low) if low is not None else nodes
    hi = int(high) if high is not None else nodes
    if not 1 <= lo <= nodes <= hi or par.get("layout", "data") != "data":
        conv.warn(
            "spec.elasticPolicy.minReplicas",
            f"not converted; minNodes {lo} <= nodes {nodes} <= maxNodes {hi} does not hold "
            "(or the layout is not data), so the gang keeps a fixed size",
        )
        return
    par["minNodes"], par["maxNodes"] = lo, hi


def _metadata(job: Obj, conv: _Conversion) -> Obj:
    meta = job.get("metadata") or {}
    if not meta.get("name"):
        raise ConversionError("metadata.name: missing")
    out: Obj = {"name": meta["name"]}
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    labels = {**(meta.get("labels") or {}), **conv.labels}
    if labels:
        out["labels"] = labels
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k not in DROPPED_ANNOTATIONS
    }
    if annotations:
        out["annotations"] = annotations
    return out


def convert_file(path: Path) -> int:
    """The CLI: the TrainingJob as YAML on stdout, `warning: <field>: ...` lines on stderr;
    exit 2 with the reason when the file cannot be converted. `-` reads stdin, so
    `kubectl get pytorchjob NAME -o yaml | trainforge convert -` works."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
        job = next(
            (d for d in docs if isinstance(d, dict) and d.get("kind") == KUBEFLOW_KIND), None
        )
        if job is None:
            raise ConversionError(f"{path} holds no document with kind: {KUBEFLOW_KIND}")
        manifest, warnings = convert(job)
    except (OSError, yaml.YAMLError, ConversionError) as err:
        print(f"trainforge convert: {err}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False), end="")
    return 0

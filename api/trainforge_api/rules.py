"""Every cross-field rule of a TrainingJob, stated once: a Python check beside its CEL twin.

The API server runs the CEL (`x-kubernetes-validations`, generated into the CRD), the operator
runs `spec_problems` before it creates anything, and the worker runtime and local mode run
`context_problems` before any process starts. All three read the one table below, so a spec that
passes `kubectl apply` is a spec the runtime can run. Each message names the field and says what
to change. tests/unit/test_rules.py (hypothesis) and tests/integration/test_rules_apiserver.py (a
real API server) prove that the two halves of every row agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from trainforge_api.launchers import RUNTIME_MODULE_PREFIX, runs_trainforge_module
from trainforge_api.trainingjob import MAX_POD_NAME, WORKER_SUFFIX, Parallelism, TrainingJobSpec

Scope = Literal["metadata", "spec", "parallelism"]

# procsPerNode with its default (resources.gpus, or 1 without GPUs), as a CEL expression on spec.
_PROCS = (
    "(has(self.parallelism.procsPerNode) ? self.parallelism.procsPerNode : "
    "(self.resources.gpus > 0 ? self.resources.gpus : 1))"
)
_SUSPENDED = "(self.runPolicy.suspend || oldSelf.runPolicy.suspend)"
# `<name>-worker-<index>` is a pod hostname: a DNS-1123 label of at most 63 characters.
_NAME_BUDGET = MAX_POD_NAME - len(WORKER_SUFFIX)
_DNS1035 = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
_P = "self.spec.parallelism"
_LARGEST = f"((has({_P}.maxNodes) && {_P}.maxNodes > {_P}.nodes) ? {_P}.maxNodes : {_P}.nodes)"


# Where checkpoints and artifacts may go: an object store with a bucket, or a filesystem path
# (file:// URIs and plain paths are absolute, since they name a mounted volume in the pod).
STORAGE_SCHEMES = ("s3", "s3a", "gs", "gcs", "file")
_STORAGE_URI = "^((s3|s3a|gs|gcs)://[^/ ]+(/[^ ]*)?|file:///[^ ]*|/[^ ]*)$"


@dataclass(frozen=True)
class Rule:
    """One rule. `cel` is evaluated by the API server with `self` at `scope` (the object's root
    for metadata rules); `holds` is the same rule in Python, on the job's name and spec."""

    scope: Scope
    cel: str
    message: str
    holds: Callable[[str | None, TrainingJobSpec], bool]
    reason: str = "FieldValueInvalid"

    def crd(self) -> dict[str, str]:
        """The rule as an `x-kubernetes-validations` entry."""
        return {"rule": self.cel, "message": self.message, "reason": self.reason}


def _layout_is(
    layout: str, tp: Callable[[int], bool], pp: Callable[[int], bool]
) -> Callable[[str | None, TrainingJobSpec], bool]:
    def holds(_: str | None, spec: TrainingJobSpec) -> bool:
        p = spec.parallelism
        return p.layout != layout or (tp(p.tensor_parallel) and pp(p.pipeline_stages))

    return holds


def _one(n: int) -> bool:
    return n == 1


def _two_or_more(n: int) -> bool:
    return n >= 2


def _divides_world(_: str | None, spec: TrainingJobSpec) -> bool:
    p = spec.parallelism
    return spec.world_size % (p.tensor_parallel * p.pipeline_stages) == 0


# torch's own launcher: under trainforge it would start a second, nested world per pod.
_TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")
_ARGV = "(self.command + self.args)"
_MODULES_CEL = "['" + "', '".join(_TORCHRUN_MODULES) + "']"
# ... also inside a shell command: [bash, -c, "cd /app && torchrun ... train.py"].
_SHELL = "^(.*/)?(ba|da|z|k|a)?sh$"
_SHELL_TORCHRUN = r"(^|[\s;&|(])(\S*/)?torchrun(\s|$)|-m\s+torch\.distributed\.(run|launch)(\s|$)"
_SHELL_TORCHRUN_CEL = _SHELL_TORCHRUN.replace("\\", "\\\\")  # a CEL string literal escapes \
_NO_TORCHRUN_CEL = (
    f"size(self.command) == 0 || (self.command[0] != 'torchrun' && "
    f"!self.command[0].endsWith('/torchrun') && "
    f"!(size({_ARGV}) > 2 && {_ARGV}[1] == '-m' && {_ARGV}[2] in {_MODULES_CEL}) && "
    f"!(size({_ARGV}) > 3 && {_ARGV}[2] == '-m' && {_ARGV}[3] in {_MODULES_CEL}) && "
    f"!(size({_ARGV}) > 2 && {_ARGV}[0].matches('{_SHELL}') && {_ARGV}[1] == '-c' && "
    f"{_ARGV}[2].matches('{_SHELL_TORCHRUN_CEL}')) && "
    f"!(size({_ARGV}) > 3 && {_ARGV}[0].matches('{_SHELL}') && {_ARGV}[2] == '-c' && "
    f"{_ARGV}[3].matches('{_SHELL_TORCHRUN_CEL}')))"
)


def _no_torchrun(_: str | None, spec: TrainingJobSpec) -> bool:
    """The program is not torchrun, nor `python [opt] -m torch.distributed.run|launch`."""
    if not spec.command:
        return True
    argv = [*spec.command, *spec.args]
    if argv[0] == "torchrun" or argv[0].endswith("/torchrun"):
        return False
    if re.fullmatch(_SHELL[1:-1], argv[0]) and any(
        len(argv) > i + 1 and argv[i] == "-c" and re.search(_SHELL_TORCHRUN, argv[i + 1])
        for i in (1, 2)
    ):
        return False
    return not any(
        len(argv) > i + 1 and argv[i] == "-m" and argv[i + 1] in _TORCHRUN_MODULES for i in (1, 2)
    )


def _starts_with_runtime(index: int) -> str:
    return f"{_ARGV}[{index}].startsWith('{RUNTIME_MODULE_PREFIX}')"


_STANDALONE_RUNS_PLAIN_CODE_CEL = (
    "!has(self.launcher) || self.launcher != 'standalone' || !("
    f"(size({_ARGV}) > 2 && {_ARGV}[1] == '-m' && {_starts_with_runtime(2)}) || "
    f"(size({_ARGV}) > 3 && {_ARGV}[2] == '-m' && {_starts_with_runtime(3)}))"
)


def _standalone_runs_plain_code(_: str | None, spec: TrainingJobSpec) -> bool:
    """trainforge's own trainers need the runtime launcher (their metrics, health, uploads)."""
    return spec.launcher != "standalone" or not runs_trainforge_module([*spec.command, *spec.args])


def _largest(p: Parallelism) -> int:
    """The most nodes the job may ever have: an elastic job grows up to maxNodes."""
    return max(p.nodes, p.max_size)


def _name_fits(name: str | None, spec: TrainingJobSpec) -> bool:
    return name is None or len(name) + len(str(_largest(spec.parallelism) - 1)) <= _NAME_BUDGET


def _name_is_dns1035(name: str | None, _: TrainingJobSpec) -> bool:
    return name is None or re.fullmatch(_DNS1035[1:-1], name) is not None


def _size_in_bounds(_: str | None, spec: TrainingJobSpec) -> bool:
    p = spec.parallelism
    return p.min_size <= p.nodes <= p.max_size


def _fixed_unless_data(_: str | None, spec: TrainingJobSpec) -> bool:
    p = spec.parallelism
    return p.layout == "data" or p.min_size == p.nodes == p.max_size


# Elastic sizes. Only DDP replicas can join and leave: FSDP shards, tensor and pipeline meshes are
# built for one world size (a checkpoint of one does not load into another), so they are fixed.
ELASTIC_RULES: list[Rule] = [
    Rule(
        "parallelism",
        "(!has(self.minNodes) || self.minNodes <= self.nodes) && "
        "(!has(self.maxNodes) || self.maxNodes >= self.nodes)",
        "spec.parallelism: need minNodes <= nodes <= maxNodes (both default to nodes)",
        _size_in_bounds,
    ),
    Rule(
        "parallelism",
        "self.layout == 'data' || ((!has(self.minNodes) || self.minNodes == self.nodes) && "
        "(!has(self.maxNodes) || self.maxNodes == self.nodes))",
        "spec.parallelism: only layout data (DDP) is elastic; fsdp, tensor and pipeline run at "
        "a fixed size, so drop minNodes and maxNodes or set both to nodes",
        _fixed_unless_data,
    ),
]

# Which tensorParallel and pipelineStages each layout supports; the runtime builds exactly these
# process meshes (trainforge_runtime/layouts.py). Tensor and pipeline parallelism do not combine.
PARALLELISM_RULES: list[Rule] = [
    Rule(
        "parallelism",
        "self.layout != 'data' || (self.tensorParallel == 1 && self.pipelineStages == 1)",
        "spec.parallelism: layout data (DDP) replicates the whole model, so it needs "
        "tensorParallel: 1 and pipelineStages: 1; to split the model use layout tensor or pipeline",
        _layout_is("data", _one, _one),
    ),
    Rule(
        "parallelism",
        "self.layout != 'fsdp' || (self.tensorParallel == 1 && self.pipelineStages == 1)",
        "spec.parallelism: layout fsdp shards the model over every rank, so it needs "
        "tensorParallel: 1 and pipelineStages: 1; for tensor parallelism use layout tensor",
        _layout_is("fsdp", _one, _one),
    ),
    Rule(
        "parallelism",
        "self.layout != 'pipeline' || (self.pipelineStages >= 2 && self.tensorParallel == 1)",
        "spec.parallelism: layout pipeline needs pipelineStages >= 2 and tensorParallel: 1 "
        "(tensor and pipeline parallelism do not combine)",
        _layout_is("pipeline", _one, _two_or_more),
    ),
    Rule(
        "parallelism",
        "self.layout != 'tensor' || (self.tensorParallel >= 2 && self.pipelineStages == 1)",
        "spec.parallelism: layout tensor needs tensorParallel >= 2 and pipelineStages: 1 "
        "(tensor and pipeline parallelism do not combine)",
        _layout_is("tensor", _two_or_more, _one),
    ),
    *ELASTIC_RULES,
]


def _storage_uri_ok(section: str) -> Callable[[str | None, TrainingJobSpec], bool]:
    def holds(_: str | None, spec: TrainingJobSpec) -> bool:
        uri = getattr(getattr(spec, section), "uri", None)
        return uri is None or re.fullmatch(_STORAGE_URI[1:-1], uri) is not None

    return holds


def _storage_rule(section: str) -> Rule:
    field = f"spec.{section}.uri"
    return Rule(
        "spec",
        f"!has(self.{section}) || !has(self.{section}.uri) || "
        f"self.{section}.uri.matches('{_STORAGE_URI}')",
        f"{field}: use s3://<bucket>/<prefix>, gs://<bucket>/<prefix>, file:///<absolute path> "
        f"or an absolute path (supported schemes: {', '.join(STORAGE_SCHEMES)})",
        _storage_uri_ok(section),
    )


SPEC_RULES: list[Rule] = [
    Rule(
        "spec",
        "size(self.command) > 0",
        "spec.command: empty; set the program every rank runs, for example "
        "[python, -m, trainforge_runtime.trainers.digits]",
        lambda _, spec: len(spec.command) > 0,
    ),
    Rule(
        "spec",
        _NO_TORCHRUN_CEL,
        "spec.command: do not start torchrun (or python -m torch.distributed.run) under "
        "trainforge: trainforge already is the launcher and starts nodes x procsPerNode processes "
        "with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set; write command: "
        "[python, train.py] with the script's own arguments in args (drop torchrun's flags) and "
        "set spec.parallelism.nodes and procsPerNode",
        _no_torchrun,
    ),
    Rule(
        "spec",
        _STANDALONE_RUNS_PLAIN_CODE_CEL,
        "spec.launcher: standalone runs your own script in any image, but trainforge's own "
        "trainers (python -m trainforge_runtime...) need the trainforge runtime in the image: "
        "set launcher: runtime (or auto) and use the trainforge worker image or one built on it",
        _standalone_runs_plain_code,
    ),
    Rule(
        "spec",
        f"(self.parallelism.nodes * {_PROCS}) % "
        "(self.parallelism.tensorParallel * self.parallelism.pipelineStages) == 0",
        "spec.parallelism: tensorParallel x pipelineStages must divide the world size "
        "nodes x procsPerNode (procsPerNode defaults to resources.gpus, or 1); change nodes, "
        "procsPerNode, tensorParallel or pipelineStages",
        _divides_world,
    ),
    Rule(
        "spec",
        "self.runPolicy.maxRestartBackoffSeconds >= self.runPolicy.restartBackoffSeconds",
        "spec.runPolicy: maxRestartBackoffSeconds must be >= restartBackoffSeconds",
        lambda _, spec: (
            spec.run_policy.max_restart_backoff_seconds >= spec.run_policy.restart_backoff_seconds
        ),
    ),
    _storage_rule("artifacts"),
    _storage_rule("checkpoint"),
    Rule(
        "spec",
        "!has(self.runPolicy.failurePolicy) || !has(self.runPolicy.failurePolicy.rules) || "
        "self.runPolicy.failurePolicy.rules.all(r, "
        "has(r.onExitCodes) || has(r.onPodConditions) || has(r.onReasons))",
        "spec.runPolicy.failurePolicy.rules: every rule needs a matcher: set onExitCodes, "
        "onPodConditions or onReasons (a rule without one would match every failure)",
        lambda _, spec: all(
            r.on_exit_codes is not None
            or r.on_pod_conditions is not None
            or r.on_reasons is not None
            for r in spec.run_policy.failure_policy.rules
        ),
    ),
]

METADATA_RULES: list[Rule] = [
    Rule(
        "metadata",
        f"self.metadata.name.matches('{_DNS1035}')",
        "metadata.name must be a DNS-1035 label: lowercase letters, digits and '-', starting "
        "with a letter and ending with a letter or digit (it names the headless Service)",
        _name_is_dns1035,
    ),
    Rule(
        "metadata",
        f"size(self.metadata.name) + size(string({_LARGEST} - 1)) <= {_NAME_BUDGET}",
        "metadata.name is too long: '<name>-worker-<nodes-1>' must fit in 63 characters for the "
        "largest nodes (maxNodes on an elastic job; at most 54 characters for up to 10 nodes); "
        "choose a shorter name",
        _name_fits,
    ),
]

# Rules on changes (CEL transition rules, `oldSelf`): only the API server sees both versions.


@dataclass(frozen=True)
class TransitionRule:
    """A rule on an update of the spec: `cel` sees `self` and `oldSelf` (both specs); `holds` is
    the same rule in Python, on the old and the new spec."""

    cel: str
    message: str
    holds: Callable[[TrainingJobSpec, TrainingJobSpec], bool]
    reason: str = "FieldValueForbidden"

    def crd(self) -> dict[str, str]:
        """The rule as an `x-kubernetes-validations` entry."""
        return {"rule": self.cel, "message": self.message, "reason": self.reason}


def _suspended(old: TrainingJobSpec, new: TrainingJobSpec) -> bool:
    return old.run_policy.suspend or new.run_policy.suspend


# What a resize may change: the desired size; the bounds stay (with their default, nodes).
_SIZE_FIELDS = ("nodes", "min_nodes", "max_nodes")
_FIXED_FIELDS = [f.alias or n for n, f in Parallelism.model_fields.items() if n not in _SIZE_FIELDS]


def _bound(obj: str, field: str) -> str:
    return f"(has({obj}.parallelism.{field}) ? {obj}.parallelism.{field} : {obj}.parallelism.nodes)"


def _unchanged(field: str) -> str:
    new, old = f"self.parallelism.{field}", f"oldSelf.parallelism.{field}"
    return f"(has({new}) == has({old}) && (!has({new}) || {new} == {old}))"


# An elastic job (minNodes < maxNodes) resizes while it runs: only nodes changes, within the
# same bounds (the parallelism rules keep it in [minNodes, maxNodes]). Every other field of
# parallelism (generated from the model, so a new field is covered too) stays as it was.
_RESIZED_CEL = " && ".join(
    [
        f"{_bound('oldSelf', 'minNodes')} < {_bound('oldSelf', 'maxNodes')}",
        f"{_bound('self', 'minNodes')} == {_bound('oldSelf', 'minNodes')}",
        f"{_bound('self', 'maxNodes')} == {_bound('oldSelf', 'maxNodes')}",
        *(_unchanged(field) for field in _FIXED_FIELDS),
    ]
)


def _resized(old: Parallelism, new: Parallelism) -> bool:
    """Only nodes changed, on an elastic job, and minNodes and maxNodes mean what they did."""
    sizes = dict.fromkeys(_SIZE_FIELDS)
    return (
        old.elastic
        and (new.min_size, new.max_size) == (old.min_size, old.max_size)
        and old.model_copy(update=sizes) == new.model_copy(update=sizes)
    )


def _shape_kept(old: TrainingJobSpec, new: TrainingJobSpec) -> bool:
    par_ok = old.parallelism == new.parallelism or _resized(old.parallelism, new.parallelism)
    return _suspended(old, new) or (
        par_ok and old.resources == new.resources and old.node_pool == new.node_pool
    )


def _program_kept(old: TrainingJobSpec, new: TrainingJobSpec) -> bool:
    same = (old.image, old.command, old.args) == (new.image, new.command, new.args)
    return _suspended(old, new) or same


TRANSITION_RULES: list[TransitionRule] = [
    TransitionRule(
        f"{_SUSPENDED} || ((self.parallelism == oldSelf.parallelism || ({_RESIZED_CEL})) && "
        "self.resources == oldSelf.resources && self.nodePool == oldSelf.nodePool)",
        "spec.parallelism, spec.resources and spec.nodePool are immutable unless the job is "
        "suspended, except spec.parallelism.nodes of an elastic job (minNodes < maxNodes), which "
        "may change within [minNodes, maxNodes] (kubectl scale) as long as minNodes and maxNodes "
        "keep their values (set them explicitly: each defaults to nodes); else set "
        "spec.runPolicy.suspend to true first, or create a new TrainingJob",
        _shape_kept,
    ),
    TransitionRule(
        f"{_SUSPENDED} || (self.image == oldSelf.image && "
        "self.command == oldSelf.command && self.args == oldSelf.args)",
        "spec.image, spec.command and spec.args are immutable unless the job is "
        "suspended: set spec.runPolicy.suspend to true first, or create a new TrainingJob",
        _program_kept,
    ),
]

ALL_RULES: list[Rule] = [*METADATA_RULES, *PARALLELISM_RULES, *SPEC_RULES]


def max_name_length(nodes: int) -> int:
    """Longest job name for which `<name>-worker-<nodes-1>` still fits in 63 characters."""
    return _NAME_BUDGET - len(str(max(nodes - 1, 0)))


def _detail(rule: Rule, name: str | None, spec: TrainingJobSpec) -> str:
    """The numbers behind a broken rule, so the message shows what the spec said."""
    p = spec.parallelism
    if rule.holds is _divides_world:
        return (
            f" (nodes {p.nodes} x procsPerNode {spec.procs_per_node} = {spec.world_size}; "
            f"tensorParallel {p.tensor_parallel} x pipelineStages {p.pipeline_stages} = "
            f"{p.tensor_parallel * p.pipeline_stages})"
        )
    if rule.holds is _name_fits and name is not None:
        most = _largest(p)
        limit = max_name_length(most)
        return f" ('{name}' has {len(name)} characters; with {most} nodes at most {limit})"
    if rule.holds in (_size_in_bounds, _fixed_unless_data):
        sizes = f"minNodes {p.min_size}, nodes {p.nodes}, maxNodes {p.max_size}"
        return f" (layout {p.layout}, {sizes})"
    if rule.scope == "parallelism":
        return (
            f" (layout {p.layout}, tensorParallel {p.tensor_parallel}, "
            f"pipelineStages {p.pipeline_stages})"
        )
    return ""


def spec_problems(spec: TrainingJobSpec, name: str | None = None) -> list[str]:
    """Every rule a schema-valid spec breaks, each phrased as what to fix. With `name=None` the
    metadata rules are skipped (the runtime does not know a job name's limits)."""
    return [
        rule.message + _detail(rule, name, spec) for rule in ALL_RULES if not rule.holds(name, spec)
    ]


def runtime_spec(
    parallelism: Parallelism, procs_per_node: int, command: list[str], args: list[str] | None = None
) -> TrainingJobSpec:
    """The part of a spec a worker can see (its JobContext), as a spec the rules can check."""
    return TrainingJobSpec(
        command=command,
        args=args or [],
        parallelism=parallelism.model_copy(update={"procs_per_node": procs_per_node}),
    )

"""The front-door fuzzer: TrainingJob specs generated from the CRD's own schema, then mutated.

`fuzz_specs(n, seed)` is deterministic for a given seed (`SEED` is the one CI uses), so a failing
spec is replayed by its index: `fuzz_specs(i + 1, SEED)[i]`. Generation is hypothesis-jsonschema
over `openAPIV3Schema.properties.spec` of the generated CRD, with two adjustments:

- objects that the API server prunes (declared properties, no preserve-unknown-fields) get
  `additionalProperties: false`, so the fuzzer spends its budget on real fields rather than on
  keys the server drops;
- `parallelism.nodes` and `resources.gpus` are capped (`MAX_NODES`, `MAX_GPUS`) so a thousand
  accepted jobs fit on the control-plane tier's kwok nodes.

Then about half the specs get one mutation, each aimed at a way a user gets a spec wrong
(wrong types, bad quantities and URIs, broken cross-field rules, env without a name, an unknown
node pool, a field deleted). test_fuzz_front_door.py applies them to a real API server with the
operator running.

hypothesis-jsonschema 0.23 calls `many.more()`, a private hypothesis helper that newer
hypothesis releases replaced; `_Many` restores the old interface for it (the draws are the same
kind: one weighted boolean per element).
"""

from __future__ import annotations

import copy
import random
from typing import Any

import hypothesis_jsonschema._from_schema as jsonschema_strategies
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis_jsonschema import from_schema

from trainforge_operator.crd import build_crd

SEED = 16_2026
MAX_NODES = 3
MAX_GPUS = 2
COMMAND = ("python", "-m", "trainforge_runtime.trainers.digits")
Obj = dict[str, Any]


class _Many:
    """`many` as hypothesis-jsonschema 0.23 uses it: `more()` and `reject()`."""

    def __init__(self, data: Any, min_size: int, max_size: float, average_size: float) -> None:
        self.data, self.min_size, self.max_size = data, min_size, max_size
        self.p_continue = conjecture_utils._calc_p_continue(
            average_size - min_size, max_size - min_size
        )
        self.count = 0
        self.rejections = 0
        self.force_stop = False

    def more(self) -> bool:
        if self.min_size == self.max_size:
            go = self.count < self.min_size
        else:
            forced: bool | None = None
            if self.force_stop or self.count >= self.max_size:
                forced = False
            elif self.count < self.min_size:
                forced = True
            go = bool(self.data.draw_boolean(self.p_continue, forced=forced))
        if go:
            self.count += 1
        return go

    def reject(self) -> None:
        self.count -= 1
        self.rejections += 1
        if self.rejections > max(3, 2 * self.count):
            if self.count < self.min_size:
                self.data.mark_invalid()
            self.force_stop = True


class _ConjectureUtils:
    many = _Many

    def __getattr__(self, name: str) -> Any:
        return getattr(conjecture_utils, name)


if not hasattr(conjecture_utils.many, "more"):
    jsonschema_strategies.cu = _ConjectureUtils()  # type: ignore[attr-defined]


def spec_schema() -> Obj:
    """The CRD's spec schema, closed where the API server prunes, with the load caps."""
    crd = build_crd()
    schema = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    spec: Obj = schema["properties"]["spec"]

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(spec)
    spec["properties"]["parallelism"]["properties"]["nodes"]["maximum"] = MAX_NODES
    spec["properties"]["resources"]["properties"]["gpus"]["maximum"] = MAX_GPUS
    return spec


def _generated(n: int, seed: int) -> list[Obj]:
    out: list[Obj] = []
    strategy = from_schema(spec_schema(), allow_x00=False)

    @hypothesis_seed(seed)
    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(spec: Obj) -> None:
        if len(out) < n:
            out.append(spec)

    collect()
    return out


# --- mutations: each a way to get a spec wrong, on a copy ---------------------------------------


def _at(spec: Obj, *path: str) -> Obj:
    node = spec
    for key in path:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    return node


def _leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, str(k)))] or [path]
    return [path]


def _set_leaf(spec: Obj, rng: random.Random, value_of: Any) -> None:
    leaves = [p for p in _leaves(spec) if p]
    if not leaves:
        spec["command"] = value_of(rng)
        return
    path = rng.choice(leaves)
    parent = _at(spec, *path[:-1]) if len(path) > 1 else spec
    parent[path[-1]] = value_of(rng)


WRONG_VALUES: list[Any] = ["lots", "-2", -1, 0, 1.5, True, None, [], {}, "", "x" * 300, [1, "a"]]
MUTATIONS: dict[str, Any] = {
    "memory: lots": lambda s, r: _at(s, "resources").update(memory="lots"),
    "cpu: -2": lambda s, r: _at(s, "resources").update(cpu="-2"),
    "sharedMemory: 1GB": lambda s, r: _at(s, "resources").update(sharedMemory="1GB"),
    "artifacts uri missing slash": lambda s, r: _at(s, "artifacts").update(uri="s3:/bucket/x"),
    "checkpoint uri bad scheme": lambda s, r: _at(s, "checkpoint").update(uri="ftp://h/x"),
    "checkpoint uri relative": lambda s, r: _at(s, "checkpoint").update(uri="ckpt/x"),
    "nodes 0": lambda s, r: _at(s, "parallelism").update(nodes=0),
    "nodes a string": lambda s, r: _at(s, "parallelism").update(nodes="two"),
    "data layout with tensorParallel": lambda s, r: _at(s, "parallelism").update(
        layout="data", tensorParallel=2
    ),
    "tensor layout without tensorParallel": lambda s, r: _at(s, "parallelism").update(
        layout="tensor", tensorParallel=1, pipelineStages=1
    ),
    "empty command": lambda s, r: s.update(command=[]),
    "command a string": lambda s, r: s.update(command="python train.py"),
    "no command": lambda s, r: s.pop("command", None),
    "env without a name": lambda s, r: s.update(env=[{"value": "x"}]),
    "env a string": lambda s, r: s.update(env=["A=1"]),
    "unknown node pool": lambda s, r: s.update(nodePool="no-such-pool"),
    "backoff order": lambda s, r: _at(s, "runPolicy").update(
        restartBackoffSeconds=60, maxRestartBackoffSeconds=1
    ),
    "a leaf of the wrong type": lambda s, r: _set_leaf(s, r, lambda g: g.choice(WRONG_VALUES)),
    "image with spaces": lambda s, r: s.update(image="not an image::"),
}


def fuzz_specs(n: int, seed: int = SEED) -> list[tuple[str, Obj]]:
    """`n` specs, each with the name of the mutation applied to it ('' for none)."""
    rng = random.Random(seed)
    out: list[tuple[str, Obj]] = []
    for spec in _generated(n, seed):
        spec = copy.deepcopy(spec)
        spec.setdefault("command", list(COMMAND))  # a user always names a program
        mutation = rng.choice(sorted(MUTATIONS)) if rng.random() < 0.5 else ""
        if mutation:
            MUTATIONS[mutation](spec, rng)
        out.append((mutation, spec))
    return out

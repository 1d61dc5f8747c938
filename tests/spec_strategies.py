"""hypothesis strategies for TrainingJob names and specs, shared by the unit and control-plane
tiers. They stay schema-valid and crowd the edges of every cross-field rule in
trainforge_api.rules (layouts and degrees, world-size divisibility, empty command, backoff
order, name syntax and length)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Custom resource names only have to be path segments ("." and ".." are not), so uppercase,
# '_' and '.' reach the CRD's CEL name rule; the two path-segment names never do.
names = st.one_of(
    st.from_regex(r"[a-z]([-a-z0-9]{0,60}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9_.-]{1,70}", fullmatch=True).filter(lambda n: n not in {".", ".."}),
)


# Plain scripts beside every way of nesting torch's own launcher (rejected: a second world).
COMMANDS = [
    [],
    ["python", "train.py"],
    ["torchrun", "--nproc-per-node=2", "train.py"],
    ["/opt/conda/bin/torchrun", "train.py"],
    ["python", "-m", "torch.distributed.run", "train.py"],
    ["python3", "-u", "-m", "torch.distributed.launch", "train.py"],
    ["python"],
    ["python", "-m", "my.module"],
]
ARGS = [[], ["--epochs", "3"], ["-m", "torch.distributed.run", "train.py"], ["-m", "pkg.train"]]
# Schema-valid resource quantities (the CRD pattern rejects the rest at apply).
quantities = st.sampled_from(["1", "500m", "2Gi", "1.5", "1e3", ".5", "+4Ki", "0"])
# Storage URIs at the edges of the storage-URI rule: good ones, wrong schemes, missing slashes,
# relative paths, and anything at all.
storage_uris = st.one_of(
    st.sampled_from([
        "s3://b/m/", "s3a://bucket", "gs://bk/x", "gcs://bk/x", "file:///tmp/x", "/data/ckpt",
        "s3:/bucket/x", "s3://", "s3:///x", "file://tmp", "ftp://h/x", "relative/x", "",
        "s3://b/with space", "hdfs://nn/x", "S3://b/x",
    ]),
    st.text(max_size=40),
)  # fmt: skip


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec dict as a user would write it (camelCase, defaults left out)."""
    parallelism: dict[str, Any] = {
        "layout": draw(st.sampled_from(["data", "fsdp", "pipeline", "tensor"])),
        "nodes": draw(st.integers(1, 12)),
        "tensorParallel": draw(st.integers(1, 8)),
        "pipelineStages": draw(st.integers(1, 8)),
    }
    procs = draw(st.none() | st.integers(1, 8))
    if procs is not None:
        parallelism["procsPerNode"] = procs
    for bound in ("minNodes", "maxNodes"):  # elastic sizes, around nodes
        size = draw(st.none() | st.integers(1, 12))
        if size is not None:
            parallelism[bound] = size
    spec: dict[str, Any] = {
        "command": draw(st.sampled_from(COMMANDS)),
        "args": draw(st.sampled_from(ARGS)),
        "parallelism": parallelism,
        "resources": {"gpus": draw(st.integers(0, 8)), "memory": draw(quantities)},
        "runPolicy": {
            "restartBackoffSeconds": draw(st.integers(0, 120)),
            "maxRestartBackoffSeconds": draw(st.integers(0, 120)),
        },
    }
    for section in ("artifacts", "checkpoint"):
        uri = draw(st.none() | storage_uris)
        if uri is not None:
            spec[section] = {"uri": uri}
    return spec


def manifest(name: str, spec: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# Edits of spec.parallelism on a running job, and whether the transition rule allows them
# (tests/unit/test_transition_rules.py with cel-python, tests/integration/test_elastic_scale.py
# on a real API server): only an elastic job resizes, and its bounds keep their values.
RESIZES: list[tuple[dict[str, Any], dict[str, Any], int]] = [
    ({"nodes": 2, "minNodes": 2, "maxNodes": 4}, {"nodes": 3, "minNodes": 2, "maxNodes": 4}, 1),
    ({"nodes": 4, "minNodes": 1, "maxNodes": 4}, {"nodes": 1, "minNodes": 1, "maxNodes": 4}, 1),
    # minNodes defaults to nodes: growing would raise it with nodes; stating it keeps it.
    ({"nodes": 2, "maxNodes": 3}, {"nodes": 3, "maxNodes": 3}, 0),
    ({"nodes": 2, "maxNodes": 3}, {"nodes": 3, "minNodes": 2, "maxNodes": 3}, 1),
    # A fixed gang keeps its size; an elastic one keeps its bounds and other fields.
    ({"nodes": 2}, {"nodes": 3}, 0),
    ({"nodes": 2, "minNodes": 2, "maxNodes": 2}, {"nodes": 2, "minNodes": 1, "maxNodes": 3}, 0),
    ({"nodes": 2, "minNodes": 1, "maxNodes": 3}, {"nodes": 2, "minNodes": 1, "maxNodes": 4}, 0),
    (
        {"nodes": 2, "minNodes": 1, "maxNodes": 3},
        {"nodes": 3, "minNodes": 1, "maxNodes": 3, "procsPerNode": 2},
        0,
    ),
]
RESIZE_IDS = [
    "grow",
    "shrink-to-min",
    "default-min-moves",
    "min-stated",
    "fixed",
    "fixed-made-elastic",
    "bounds-moved",
    "procs-changed",
]

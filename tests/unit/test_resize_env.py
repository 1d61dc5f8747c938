"""A worker pod's env against its job context when the job resizes (elastic, kubectl scale).

The context ConfigMap's `nodes` is the desired size and changes under running pods; each pod's
env (NNODES, NODE_RANK) says the size when the operator created it. Both launchers must accept
any size within [minNodes, maxNodes] on an elastic job (else a pod started around a resize would
exit 64, a permanent failure), and still refuse a disagreeing env on a fixed-size gang.
"""

from __future__ import annotations

from typing import Any

import pytest

from trainforge_api.context import JobContext
from trainforge_api.exitcodes import InvalidContextError
from trainforge_launcher import launch
from trainforge_runtime.config import NodeEnv

ELASTIC = {"nodes": 3, "minNodes": 2, "maxNodes": 3, "procsPerNode": 1}
FIXED = {"nodes": 3, "procsPerNode": 1}

CASES = [
    # (parallelism in the context, NNODES, NODE_RANK, accepted)
    (ELASTIC, 2, 1, True),  # created before the job grew 2 -> 3
    (ELASTIC, 3, 2, True),  # created after it
    (ELASTIC, 2, 0, True),
    (ELASTIC, 1, 0, False),  # below minNodes
    (ELASTIC, 4, 3, False),  # beyond maxNodes
    (ELASTIC, 3, 3, False),  # rank beyond maxNodes - 1
    (FIXED, 3, 2, True),
    (FIXED, 2, 1, False),  # a fixed gang never resizes while running
]
IDS = ["grown-old-pod", "grown-new-pod", "node0", "below-min", "above-max", "rank", "fixed", "fx"]


@pytest.mark.parametrize(("par", "nnodes", "rank", "ok"), CASES, ids=IDS)
def test_runtime_launcher(par: dict[str, Any], nnodes: int, rank: int, ok: bool) -> None:
    ctx = JobContext.model_validate(
        {"job": {"name": "j"}, "command": ["python"], "parallelism": par}
    )
    env = NodeEnv(rank, nnodes, 1, "127.0.0.1", 29500, 0)
    if ok:
        env.check(ctx)
    else:
        with pytest.raises(InvalidContextError, match=r"NNODES|NODE_RANK"):
            env.check(ctx)


# Node.from_env refuses NODE_RANK >= NNODES before check_gang runs.
STANDALONE = [(c, i) for c, i in zip(CASES, IDS, strict=True) if c[2] < c[1]]


@pytest.mark.parametrize(
    ("par", "nnodes", "rank", "ok"), [c for c, _ in STANDALONE], ids=[i for _, i in STANDALONE]
)
def test_standalone_launcher(par: dict[str, Any], nnodes: int, rank: int, ok: bool) -> None:
    node = launch.Node(rank, nnodes, 1, "127.0.0.1", 29500, 0)
    ctx = {"command": ["python"], "parallelism": par}
    if ok:
        launch.check_gang(ctx, node)
    else:
        with pytest.raises(launch.LaunchError, match="NNODES"):
            launch.check_gang(ctx, node)

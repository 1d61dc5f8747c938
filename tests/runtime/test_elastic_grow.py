"""An elastic world grows on real processes: a DDP job with minNodes 2 and maxNodes 3 starts on
two launchers (two "pods"); mid-training the job is scaled to 3 and the third launcher starts
(its context already says nodes 3, as the operator's ConfigMap does after `kubectl scale`, while
the first two still have NNODES=2 from their creation). The running agents see it waiting in
the c10d rendezvous, restart their processes into a world of three, every rank resumes from the
newest checkpoint, and the job finishes with the result of an uninterrupted run.

The digits trainer splits each global batch over the ranks, so the data a step sees does not
depend on the world size; only the float order of the gradient all-reduce does (tolerance), so
the uninterrupted run is the same job in one process (`elastic_reference` in conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import free_port
from test_elastic import EVERY, elastic_context, finish, result, start_launcher, wait_for

MAX_NODES = 3
# Rank 0 stalls at this step, so the third node arrives while the first two still train.
PAUSE_STEP, PAUSE_S = 12, 6


def grow_context(tmp: Path, port: int, nodes: int) -> dict[str, Any]:
    return elastic_context(tmp, port, name="grow", nodes=nodes, maxNodes=MAX_NODES)


def start_node(
    tmp: Path, port: int, node: int, nodes: int, pause: bool
) -> tuple[subprocess.Popen[bytes], Path]:
    """One launcher (a pod) created when the job's desired size was `nodes`."""
    fault = f"rank=0,step={PAUSE_STEP},pause={PAUSE_S}" if pause else ""
    return start_launcher(tmp, grow_context(tmp, port, nodes), port, node, nodes, fault)


def test_a_third_node_joins_the_running_world_and_the_job_finishes_like_an_uninterrupted_run(
    tmp_path: Path, elastic_reference: dict[str, Any]
) -> None:
    port = free_port()
    nodes = [start_node(tmp_path, port, i, 2, pause=True) for i in range(2)]
    wait_for(nodes[0][1], "pausing", timeout=300)  # rank 0 holds step PAUSE_STEP
    joined = time.monotonic()
    nodes.append(start_node(tmp_path, port, 2, 3, pause=True))
    codes = finish(nodes)
    print(f"node 2 started; the grown world finished {time.monotonic() - joined:.1f}s later")
    assert codes == [0, 0, 0], [log.read_text()[-3000:] for _, log in nodes]
    # The newcomer trained as global rank 2 of three (a rank 2 exists only in a world of
    # three), from the newest checkpoint when it arrived, as did the first two after their
    # agents restarted them into the bigger world (when depends on how fast the third starts).
    first = nodes[0][1].read_text()
    found = re.search(r"rank 0 resumed from checkpoint step (\d+)", first)
    assert found, first[-3000:]
    resumed = int(found[1])
    print(f"the world of three resumed from checkpoint step {resumed}")
    assert resumed >= PAUSE_STEP // EVERY * EVERY
    for rank, (_, log) in enumerate(nodes):
        text = log.read_text()
        assert f"rank {rank} resumed from checkpoint step {resumed}" in text, text[-3000:]
    got, want = result(tmp_path)["metrics"], elastic_reference["metrics"]
    print(f"grown run {got}; uninterrupted run in one process {want}")
    assert got["test_accuracy"] == pytest.approx(want["test_accuracy"], abs=0.01), (got, want)
    assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-3), (got, want)

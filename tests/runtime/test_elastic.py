"""Elastic world size on real processes: three launchers (three "pods") of one DDP job with
minNodes 2 meet through the c10d rendezvous; one node's launcher is killed mid-training, the two
survivors restart their processes in place, re-rendezvous as a world of two, resume from the
newest checkpoint and finish with the result of an uninterrupted run.

The digits trainer splits each global batch over the ranks, so the data a step sees does not
depend on the world size; only the float order of the gradient all-reduce does (tolerance).
So the uninterrupted run both elastic tests compare with is the same job in one process
(`elastic_reference` in conftest.py, once per session): two processes instead of four or six.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from runtime_helpers import free_port, launcher_env, make_context, run_launcher

NODES, MIN_NODES, EVERY = 3, 2, 5
# Rank 0 stalls at this step, so the test can kill a node while the others wait for it.
PAUSE_STEP, PAUSE_S = 12, 8
DIGITS = ["python", "-m", "trainforge_runtime.trainers.digits"]
HP = {"epochs": 2, "batch_size": 60, "patience": 100, "seed": 0}


def elastic_context(
    tmp: Path, port: int, *, name: str = "elastic", nodes: int = NODES, **sizes: Any
) -> dict[str, Any]:
    """An elastic digits job on local c10d (minNodes MIN_NODES; `sizes` adds e.g. maxNodes),
    checkpointing every EVERY steps so a changed world resumes from a known step."""
    ctx = make_context(
        name=name,
        command=DIGITS,
        nproc=1,
        hyperparameters=HP,
        nodes=nodes,
        minNodes=MIN_NODES,
        **sizes,
    )
    ctx["metrics"] = {"enabled": False}
    ctx["checkpoint"] = {"uri": (tmp / "ckpt").as_uri() + "/", "everySteps": EVERY}
    ctx["rendezvous"] = {
        "masterAddr": "127.0.0.1",
        "masterPort": port,
        "backend": "c10d",
        "maxRestarts": 3,
    }
    return ctx


def start_launcher(
    tmp: Path, ctx: dict[str, Any], port: int, node: int, nodes: int, fault: str = ""
) -> tuple[subprocess.Popen[bytes], Path]:
    """One launcher (a pod) in its own session, so killing it kills its ranks; `nodes` is the
    NNODES its pod was created with, `fault` an optional TRAINFORGE_FAULT."""
    home = tmp / f"node{node}"
    home.mkdir(parents=True)
    env = launcher_env(
        ctx,
        home,
        NODE_RANK=str(node),
        NNODES=str(nodes),
        NPROC_PER_NODE="1",
        MASTER_PORT=str(port),
        TRAINFORGE_RDZV_TIMEOUT="120",
        **({"TRAINFORGE_FAULT": fault} if fault else {}),
    )
    log = home / "launcher.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["nice", "-n", "5", sys.executable, "-m", "trainforge_runtime.launch"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log


def start_nodes(tmp: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """One launcher per node; rank 0 pauses at PAUSE_STEP so a node can be killed mid-run."""
    port = free_port()
    ctx = elastic_context(tmp, port)
    fault = f"rank=0,step={PAUSE_STEP},pause={PAUSE_S}"
    return [start_launcher(tmp, ctx, port, node, NODES, fault) for node in range(NODES)]


def kill_pod(pid: int) -> None:
    """SIGKILL a launcher and every process under it, as deleting its pod would: torch starts
    each rank in a session of its own, so the launcher's process group is not enough."""
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for proc in tree:
        proc.kill()
    psutil.wait_procs(tree, timeout=10)


def wait_for(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {log} after {timeout}s:\n{log.read_text()[-4000:]}")


def finish(nodes: list[tuple[subprocess.Popen[bytes], Path]], timeout: float = 400) -> list[int]:
    codes = []
    for proc, log in nodes:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            kill_pod(proc.pid)
            raise AssertionError(f"node did not finish:\n{log.read_text()[-4000:]}") from None
    return codes


def result(tmp: Path) -> dict[str, Any]:
    """Node 0's termination message: rank 0's final metrics."""
    return dict(json.loads((tmp / "node0" / "termination.json").read_text()))


def reference_run(tmp: Path) -> dict[str, Any]:
    """The elastic job's trainer and hyperparameters as one process from start to end (a static
    world of one): rank 0's termination message, what every elastic run must finish with."""
    ctx = make_context("reference", command=DIGITS, nproc=1, hyperparameters=HP)
    ctx["metrics"] = {"enabled": False}
    run = run_launcher(ctx, tmp)
    assert run.code == 0, run.proc.stderr[-3000:]
    assert run.termination is not None
    return run.termination


def test_losing_a_node_shrinks_the_world_and_finishes_like_an_uninterrupted_run(
    tmp_path: Path, elastic_reference: dict[str, Any]
) -> None:
    nodes = start_nodes(tmp_path)
    wait_for(nodes[0][1], "pausing", timeout=300)  # rank 0 holds step PAUSE_STEP
    killed = time.monotonic()
    kill_pod(nodes[2][0].pid)
    codes = finish(nodes[:2])
    print(f"node 2 killed; the survivors finished {time.monotonic() - killed:.1f}s later")
    assert codes == [0, 0], [log.read_text()[-3000:] for _, log in nodes[:2]]
    # Both survivors restarted in place and resumed from the newest checkpoint before the pause;
    # with node 2 gone for good, finishing at all means they trained as a world of two.
    resumed = PAUSE_STEP // EVERY * EVERY
    for rank, (_, log) in enumerate(nodes[:2]):
        text = log.read_text()
        assert f"rank {rank} resumed from checkpoint step {resumed}" in text, text[-3000:]
    got, want = result(tmp_path)["metrics"], elastic_reference["metrics"]
    print(f"shrunk run {got}; uninterrupted run in one process {want}")
    assert got["test_accuracy"] == pytest.approx(want["test_accuracy"], abs=0.01), (got, want)
    assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-3), (got, want)

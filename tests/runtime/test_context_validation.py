"""Bad job contexts fail fast with exit 64 and a message that says what to fix."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_helpers import launcher_env, make_context

from trainforge_api.context import JobContext
from trainforge_api.exitcodes import InvalidContextError
from trainforge_runtime.config import validate_context


def launch(ctx: dict, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainforge_runtime.launch"],
        env=launcher_env(ctx, tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard: two ranks importing torch took over 60 s at load 30
    )


def test_tensor_world_not_divisible_exits_64(tmp_path: Path) -> None:
    ctx = make_context(layout="tensor", nproc=3, tensorParallel=2)
    proc = launch(ctx, tmp_path)
    assert proc.returncode == 64
    assert "tensorParallel x pipelineStages must divide the world size" in proc.stderr
    assert "nodes 1 x procsPerNode 3 = 3; tensorParallel 2 x pipelineStages 1 = 2" in proc.stderr
    term = json.loads((tmp_path / "termination.json").read_text())
    assert term["exitReason"] == "InvalidContext"
    assert "must divide the world size" in term["message"]


def test_pipeline_needs_two_stages_exits_64(tmp_path: Path) -> None:
    proc = launch(make_context(layout="pipeline", nproc=2, pipelineStages=1), tmp_path)
    assert proc.returncode == 64
    assert "pipelineStages >= 2" in proc.stderr


def test_missing_context_file_exits_64(tmp_path: Path) -> None:
    proc = launch(make_context(), tmp_path, TRAINFORGE_CONTEXT=str(tmp_path / "nope.json"))
    assert proc.returncode == 64
    assert "not found" in proc.stderr
    assert "TRAINFORGE_CONTEXT" in proc.stderr


def test_unknown_field_in_context_exits_64(tmp_path: Path) -> None:
    ctx = make_context()
    ctx["parallelism"]["layuot"] = "data"
    proc = launch(ctx, tmp_path)
    assert proc.returncode == 64
    assert "layuot" in proc.stderr


def test_env_disagreeing_with_context_exits_64(tmp_path: Path) -> None:
    proc = launch(make_context(nproc=2), tmp_path, NPROC_PER_NODE="3")
    assert proc.returncode == 64
    assert "NPROC_PER_NODE=3" in proc.stderr


def test_bad_hyperparameter_in_worker_exits_64(tmp_path: Path) -> None:
    ctx = make_context(layout="data", nproc=2, hyperparameters={"batch_size": 7, "steps": 1})
    proc = launch(ctx, tmp_path)
    assert proc.returncode == 64, proc.stderr[-3000:]
    assert "batch_size 7 is not divisible" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("parallelism", "needle"),
    [
        ({"layout": "data", "tensorParallel": 2, "procsPerNode": 2}, "layout data (DDP)"),
        ({"layout": "fsdp", "pipelineStages": 2, "procsPerNode": 2}, "layout fsdp shards"),
        ({"layout": "fsdp", "tensorParallel": 2, "procsPerNode": 2}, "layout fsdp shards"),
        (
            {"layout": "tensor", "tensorParallel": 2, "pipelineStages": 2, "procsPerNode": 4},
            "layout tensor needs tensorParallel >= 2 and pipelineStages: 1",
        ),
        ({"layout": "tensor", "tensorParallel": 4, "procsPerNode": 2}, "must divide the world"),
    ],
)
def test_validate_context_rejects(parallelism: dict, needle: str) -> None:
    ctx = JobContext.model_validate(
        {"job": {"name": "x"}, "command": ["python"], "parallelism": parallelism}
    )
    with pytest.raises(InvalidContextError, match=re.escape(needle)):
        validate_context(ctx)

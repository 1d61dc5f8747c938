"""`trainforge run examples/digits-ddp.yaml --local`: 2 launchers x 1 proc, DDP over gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_helpers import REPO, free_port_range


def run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # The runtime and its contract package only: local mode never needs the operator.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "training_image"), str(REPO / "api")])
    return subprocess.run(
        ["nice", "-n", "5", sys.executable, "-m", "trainforge_runtime.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ddp_local_mode_digits_reaches_90_percent(tmp_path: Path) -> None:
    port = free_port_range(4)  # per node: its launcher, then its rank
    example = REPO / "examples" / "digits-ddp.yaml"
    proc = run_cli(["run", str(example), "--local", "--metrics-port", str(port)], tmp_path)
    out_dir = tmp_path / "trainforge-output" / "digits-ddp"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 node(s) x 1 proc(s), layout data" in proc.stdout
    assert "%] step " in proc.stdout  # progress lines from rank 0's /progress
    assert "test_accuracy" in proc.stdout  # final summary
    term = json.loads((out_dir / "termination-node0.json").read_text())
    assert term["exitReason"] == "Succeeded"
    assert term["metrics"]["test_accuracy"] >= 0.9
    assert term["metrics"]["test_f1_macro"] >= 0.9
    # The majority-class baseline on the same test split (10 balanced classes: about 0.1).
    assert 0.05 < term["metrics"]["baseline_test_accuracy"] < 0.2
    assert term["metrics"]["baseline_test_loss"] > term["metrics"]["test_loss"]
    cm = json.loads((out_dir / "run" / "artifacts" / "confusion_matrix.json").read_text())
    assert len(cm) == 10
    assert sum(map(sum, cm)) > 200
    context = json.loads((out_dir / "context.json").read_text())
    assert context["artifacts"]["uri"].startswith("file://")
    assert context["parallelism"]["nodes"] == 2
    assert_model_bundle(Path(context["artifacts"]["uri"].removeprefix("file://")))


BUNDLE_FILES = ("model/model.safetensors", "model/config.json", "model/labels.json")
METADATA_KEYS = {
    "hyperparameters",
    "metrics",
    "datasetFingerprint",
    "image",
    "runtimeVersion",
    "torchVersion",
    "layout",
    "worldSize",
    "durationSeconds",
}


def assert_model_bundle(dest: Path) -> None:
    """Rank 0 uploaded weights, config, labels and metadata, all listed with sha256."""
    for name in (*BUNDLE_FILES, "metadata.json", "report.html"):
        assert (dest / name).is_file(), f"{name} missing under {dest}"
    assert json.loads((dest / "model" / "labels.json").read_text()) == [str(i) for i in range(10)]
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta.keys() >= METADATA_KEYS
    assert meta["worldSize"] == 2
    assert meta["layout"] == "data"
    assert len(meta["datasetFingerprint"]) == 64
    assert meta["metrics"]["test"]["accuracy"] >= 0.9
    assert meta["metrics"]["baseline"]["test_accuracy"] < 0.2
    manifest = json.loads((dest / "manifest.json").read_text())
    listed = {e["path"]: e for e in manifest["files"]}
    for name in (*BUNDLE_FILES, "metadata.json"):
        assert len(listed[name]["sha256"]) == 64
    assert not (dest / "model.safetensors").exists()  # the old ad-hoc copy is gone


@pytest.mark.parametrize(
    ("parallelism", "fragment"),
    [
        ("{layout: tensor, nodes: 1, procsPerNode: 3, tensorParallel: 2}", "must divide the world"),
        # Both once passed the API server and the operator, then every rank exited 64.
        ("{layout: fsdp, nodes: 2, tensorParallel: 2}", "layout fsdp shards the model"),
        (
            "{layout: tensor, nodes: 4, tensorParallel: 2, pipelineStages: 2}",
            "layout tensor needs tensorParallel >= 2 and pipelineStages: 1",
        ),
    ],
    ids=["world-not-divisible", "fsdp-with-tensor-parallel", "tensor-with-pipeline-stages"],
)
def test_local_mode_rejects_bad_spec_before_any_process(
    tmp_path: Path, parallelism: str, fragment: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: trainforge.io/v1alpha1\nkind: TrainingJob\nmetadata: {name: bad}\n"
        "spec:\n  command: [python, -m, trainforge_runtime.trainers.gpt]\n"
        f"  parallelism: {parallelism}\n"
    )
    proc = run_cli(["run", str(bad), "--local"], tmp_path)
    assert proc.returncode == 64
    assert fragment in proc.stderr
    assert not list(tmp_path.rglob("node-*.log")), "a launcher was started"


def plain_job(tmp_path: Path, name: str, command: list[str], **spec: object) -> Path:
    """A TrainingJob file for a plain script: 2 nodes x 2 procs on CPU."""
    doc = {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"command": command, "parallelism": {"nodes": 2, "procsPerNode": 2}, **spec},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(doc))
    return path


def test_plain_script_local_mode_one_world_of_4_streams_rank_prefixed_output(
    tmp_path: Path,
) -> None:
    script = REPO / "tests" / "runtime" / "scripts" / "plain_torchrun.py"
    job = plain_job(tmp_path, "plain", ["python", str(script)])
    port = free_port_range(6)
    proc = run_cli(["run", str(job), "--local", "--metrics-port", str(port)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "trainforge-output" / "plain" / "run"
    seen = sorted((run_dir / f"plain-{r}.txt").read_text().split() for r in range(4))
    # rank, world, local rank, all-reduced sum 1+2+3+4: one world, not one per node
    assert seen == [[str(r), "4", str(r % 2), "10.0"] for r in range(4)]
    for rank in range(4):
        line = f"[node{rank // 2}/rank{rank}]: hello from rank {rank} of 4"
        assert line in proc.stdout
        node_log = (tmp_path / "trainforge-output" / "plain" / f"node-{rank // 2}.log").read_text()
        assert line in node_log  # the log files are kept
    assert "[node1]: " in proc.stdout  # the launcher's own lines name their node


def test_local_mode_rejects_torchrun_with_what_to_write(tmp_path: Path) -> None:
    # Once each node's torchrun formed its own world of 1 here and the job still Succeeded.
    job = plain_job(tmp_path, "nested", ["torchrun", "--nproc-per-node=2", "train.py"])
    proc = run_cli(["run", str(job), "--local"], tmp_path)
    assert proc.returncode == 64
    assert "write command: [python, train.py]" in proc.stderr
    assert not list(tmp_path.rglob("node-*.log")), "a launcher was started"

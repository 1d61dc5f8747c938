"""trainforge_sdk from a plain 2-rank script: the launcher serves what rank 0 reports on the
pod's /progress and /metrics, and turns the final report into the termination summary (what
reaches status.results and status.progress)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from runtime_helpers import (
    REPO,
    SCRIPTS,
    free_port_range,
    launcher_env,
    make_context,
    run_launcher,
)
from test_launcher import get, labels_key, scrape, wait_for


def test_sdk_is_standard_library_only() -> None:
    tree = ast.parse((REPO / "training_image" / "trainforge_sdk" / "__init__.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
        if alias.name
    }
    assert imported <= sys.stdlib_module_names | {"__future__"}, imported


def test_sdk_reports_reach_progress_metrics_and_the_summary(tmp_path: Path) -> None:
    base = free_port_range(3)
    cmd = ["python", str(SCRIPTS / "sdk_script.py")]
    ctx = make_context("sdk", command=cmd, nproc=2, metrics_port=base)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainforge_runtime.launch"],
        env=launcher_env(ctx, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for([run / "before-0", run / "before-1"], proc)
        progress = json.loads(get(f"http://127.0.0.1:{base}/progress")[1])
        assert progress["phase"] == "unreported"  # the operator warns instead of restarting
        (run / "go-before").write_text("")
        wait_for([run / "after-0", run / "after-1"], proc)
        progress = json.loads(get(f"http://127.0.0.1:{base}/progress")[1])
        assert (progress["step"], progress["totalSteps"], progress["percent"]) == (4, 10, 40.0)
        assert progress["metrics"] == {"loss": 0.25, "lr": 0.1}
        assert progress["checkpoint"]["step"] == 4
        assert progress["phase"] == "training"
        samples = scrape(get(f"http://127.0.0.1:{base}/metrics")[1])
        rank0 = labels_key({"job": "sdk", "namespace": "test", "rank": "0"})
        assert samples[("trainforge_train_step", rank0)] == 4
        assert samples[("trainforge_train_loss", rank0)] == 0.25
        assert samples[("trainforge_total_steps", rank0)] == 10
    finally:
        (run / "go-before").write_text("")
        (run / "go-after").write_text("")
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    term = json.loads((tmp_path / "termination.json").read_text())
    assert term["exitReason"] == "Succeeded"
    assert (term["step"], term["totalSteps"]) == (4, 10)  # the operator reads: stopped early at 4
    assert term["metrics"] == {"loss": 0.25, "lr": 0.1, "val_accuracy": 0.75}


def run_one_rank(script: str, tmp_path: Path) -> dict[str, object]:
    """The script under the real launcher (1 rank); returns the termination summary."""
    ctx = make_context(script, command=["python", str(SCRIPTS / f"{script}_script.py")], nproc=1)
    res = run_launcher(ctx, tmp_path)
    assert res.code == 0, res.proc.stdout[-3000:] + res.proc.stderr[-3000:]
    assert res.termination is not None
    return res.termination


def test_huggingface_trainer_callback_feeds_progress_and_results(tmp_path: Path) -> None:
    term = run_one_rank("hf", tmp_path)
    assert (term["exitReason"], term["step"], term["totalSteps"]) == ("Succeeded", 6, 6)
    metrics = term["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["loss"] > 0  # logged every 2 steps
    assert metrics["train_loss"] > 0  # the Trainer's final summary
    sdk = json.loads((tmp_path / "run" / "sdk-progress.json").read_text())
    assert sdk["checkpoint"]["step"] == 6
    assert sdk["finished"] is True


def test_lightning_callback_feeds_progress_and_results(tmp_path: Path) -> None:
    term = run_one_rank("lightning", tmp_path)
    assert (term["exitReason"], term["step"], term["totalSteps"]) == ("Succeeded", 8, 8)
    metrics = term["metrics"]
    assert isinstance(metrics, dict)
    assert {"loss", "val_loss"} <= set(metrics)
    sdk = json.loads((tmp_path / "run" / "sdk-progress.json").read_text())
    assert sdk["checkpoint"]["step"] == 8
    assert sdk["finished"] is True

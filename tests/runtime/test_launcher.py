"""The launcher end to end: metrics endpoints, plain torchrun scripts, SIGTERM, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from metric_names import WORKER_GAUGES
from runtime_helpers import SCRIPTS, free_port_range, launcher_env, make_context, run_launcher

EXPECTED_GAUGES = [  # the series hold_trainer sets
    "trainforge_train_step",
    "trainforge_train_loss",
    "trainforge_val_loss",
    "trainforge_train_accuracy",
    "trainforge_val_accuracy",
    "trainforge_learning_rate",
    "trainforge_grad_norm",
    "trainforge_samples_per_second",
    "trainforge_total_steps",
]
# every other gauge the runtime exports is never set by hold_trainer on CPU: no series at all (a 0
# would read as a real value)
UNSET_GAUGES = sorted(WORKER_GAUGES - set(EXPECTED_GAUGES))


def labels_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, labels_key(s.labels)): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_for(paths: list[Path], proc: subprocess.Popen[str], timeout: float = 480) -> None:
    deadline = time.time() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, f"launcher exited early: {proc.communicate()}"
        assert time.time() < deadline, "workers never became ready"
        time.sleep(0.2)


def start(ctx: dict, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainforge_runtime.launch"],
        env=launcher_env(ctx, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_ddp_metrics_endpoint_series_and_labels(tmp_path: Path) -> None:
    base = free_port_range(3)  # the pod's launcher, then one per local rank
    cmd = ["python", str(SCRIPTS / "hold_trainer.py")]
    ctx = make_context("metrics-ddp", command=cmd, metrics_port=base)
    proc = start(ctx, tmp_path)
    run = tmp_path / "run"
    try:
        wait_for([run / "ready-0", run / "ready-1"], proc)
        # one scrape of the declared port sees every local rank (procsPerNode 2) and the pod
        status, text = get(f"http://127.0.0.1:{base}/metrics")
        assert status == 200
        samples = scrape(text)
        pod = labels_key({"job": "metrics-ddp", "namespace": "test", "node": "0"})
        assert samples[("trainforge_pod_cpu_seconds", pod)] > 0
        assert samples[("trainforge_pod_memory_rss_bytes", pod)] > 50e6  # torch is loaded
        assert samples[("trainforge_pod_processes", pod)] >= 3  # launcher + 2 ranks
        assert samples[("trainforge_pod_restarts", pod)] == 0
        for rank in (0, 1):
            assert get(f"http://127.0.0.1:{base + 1 + rank}/metrics")[0] == 200  # its own too
            want = {"job": "metrics-ddp", "namespace": "test", "rank": str(rank)}
            for name in EXPECTED_GAUGES:
                assert samples.get((name, labels_key(want))) is not None, f"{name} on rank {rank}"
            for name in UNSET_GAUGES:
                assert (name, labels_key(want)) not in samples, f"{name} exported before set"
            assert samples[("trainforge_train_step", labels_key(want))] == 5.0
            assert samples[("trainforge_grad_norm", labels_key(want))] > 0
            for phase in ("data_wait", "compute", "total"):
                key = labels_key({**want, "phase": phase})
                assert samples[("trainforge_step_seconds_count", key)] == 5.0
            assert ("trainforge_checkpoint_seconds_count", labels_key(want)) in samples
        status, body = get(f"http://127.0.0.1:{base}/progress")
        progress = json.loads(body)
        assert progress["step"] == 5
        assert progress["totalSteps"] == 5
        assert progress["percent"] == 100.0
        assert progress["metrics"]["val_loss"] == 0.3
        assert progress["phase"] == "training"
        assert get(f"http://127.0.0.1:{base + 2}/progress")[0] == 404  # rank 0 only
    finally:
        (run / "release").write_text("")
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]


def test_ddp_sigterm_forwards_and_exits_143(tmp_path: Path) -> None:
    cmd = ["python", str(SCRIPTS / "hold_trainer.py")]
    ctx = make_context("sigterm", command=cmd, hyperparameters={"mode": "loop"})
    proc = start(ctx, tmp_path)
    wait_for([tmp_path / "run" / "ready-0", tmp_path / "run" / "ready-1"], proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out[-3000:]
    term = json.loads((tmp_path / "termination.json").read_text())
    assert term["exitCode"] == 143
    assert term["exitReason"] == "Terminated"


def test_ddp_plain_torchrun_script_runs_unchanged(tmp_path: Path) -> None:
    ctx = make_context("plain", command=["python", str(SCRIPTS / "plain_torchrun.py")])
    result = run_launcher(ctx, tmp_path)
    assert result.code == 0
    for rank in (0, 1):
        text = (tmp_path / "run" / f"plain-{rank}.txt").read_text()
        assert text == f"{rank} 2 {rank} 3.0"


def test_ddp_user_error_exits_1_with_message(tmp_path: Path) -> None:
    ctx = make_context("boom", command=["python", "-c", "raise SystemExit(1)"])
    result = run_launcher(ctx, tmp_path)
    assert result.code == 1
    assert result.termination is not None
    assert result.termination["exitCode"] == 1


def test_ddp_rank_killed_reports_the_kill_not_its_peers_fallout(tmp_path: Path) -> None:
    """Rank 1 is SIGKILLed mid-training: rank 0's collective fails with gloo's 'connection
    closed by peer', which the runtime records as PeerFailure (75, retryable), and the pod's
    exit code and reason name the kill."""
    ctx = make_context(
        "victim",
        command=["python", "-m", "trainforge_runtime.trainers.digits"],
        hyperparameters={"epochs": 2, "batch_size": 32},
    )
    result = run_launcher(ctx, tmp_path, TRAINFORGE_FAULT="rank=1,step=3,code=137")
    assert result.code == 137
    assert result.termination is not None
    assert result.termination["exitReason"] == "Signal9"
    rank0 = json.loads((result.run_dir / "summary-rank0.json").read_text())
    assert rank0["exitReason"] == "PeerFailure", rank0
    # gloo words it "Connection closed by peer" or "Read error ... Connection reset by peer"
    assert "gloo" in rank0["message"], rank0


def test_missing_command_is_permanent_and_names_the_command(tmp_path: Path) -> None:
    ctx = make_context("typo", command=["torchrunn", "train.py"], nproc=1)
    res = run_launcher(ctx, tmp_path)
    assert res.code == 127
    assert res.termination is not None
    assert res.termination["exitReason"] == "CommandNotFound"
    assert "'torchrunn' not found on PATH" in res.termination["message"]
    assert "torchrunn" in res.proc.stderr


def test_command_that_is_not_executable_is_permanent(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\necho hi\n")  # no +x bit
    ctx = make_context("noexec", command=[str(script)], nproc=1)
    res = run_launcher(ctx, tmp_path)
    assert res.code == 126
    assert res.termination is not None
    assert res.termination["exitReason"] == "CommandNotExecutable"
    assert str(script) in res.termination["message"]

"""The standalone launcher (spec.launcher: standalone) with real torch.distributed on CPU.

A job whose image is not trainforge's runs `trainforge_launcher` in local mode exactly as its
pods would. The launcher and every rank run under a `sitecustomize` that makes trainforge's
runtime, its contract package, pydantic and prometheus_client unimportable, as in an image that
has only Python and torch: the job still forms one world of 2 nodes x 2 processes, gets its
hyperparameters, streams rank-prefixed output, serves /progress and writes the termination
message with the SDK's results and the exit classification.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runtime_helpers import REPO, free_port_range

BLOCKED = ("trainforge_runtime", "trainforge_api", "pydantic", "prometheus_client", "yaml")
BLOCKER = f'''
import sys

class _NotInThisImage:
    """Packages a torch-only image does not have."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, _NotInThisImage())
'''


def torch_only_pythonpath(tmp_path: Path) -> str:
    """PYTHONPATH for the launchers: the blocker first, then the launcher and the SDK."""
    blocker = tmp_path / "torch-only"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    return os.pathsep.join([str(blocker), str(REPO / "training_image")])


def write_job(tmp_path: Path, name: str, command: list[str], **spec: object) -> Path:
    doc = {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": "python:3.12-slim",  # not trainforge's: launcher auto -> standalone
            "command": command,
            "parallelism": {"nodes": 2, "procsPerNode": 2},
            "env": [{"name": "PYTHONPATH", "value": torch_only_pythonpath(tmp_path)}],
            **spec,
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(doc))
    return path


def run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "training_image"), str(REPO / "api")])
    return subprocess.run(
        ["nice", "-n", "5", sys.executable, "-m", "trainforge_runtime.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_torch_only_image_runs_one_world_of_4(tmp_path: Path) -> None:
    script = REPO / "tests" / "runtime" / "scripts" / "plain_standalone.py"
    job = write_job(tmp_path, "byo", ["python", str(script)], hyperparameters={"lr": 0.01})
    port = free_port_range(6)
    proc = run_cli(["run", str(job), "--local", "--metrics-port", str(port)], tmp_path)
    out = tmp_path / "trainforge-output" / "byo"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "standalone launcher" in (out / "node-0.log").read_text()
    seen = [json.loads((out / "run" / f"standalone-{r}.json").read_text()) for r in range(4)]
    for rank, s in enumerate(seen):
        assert (s["rank"], s["world"], s["localRank"], s["sum"]) == (rank, 4, rank % 2, 10.0)
        assert (s["localWorldSize"], s["groupRank"]) == (2, rank // 2)
        assert s["hpEnv"] == "0.01"
        assert s["hpFile"] == {"lr": 0.01}
        assert s["importable"] == dict.fromkeys(
            ("trainforge_runtime", "trainforge_api", "pydantic", "prometheus_client"), False
        )
        assert f"[node{rank // 2}/rank{rank}]: hello from rank {rank} of 4" in proc.stdout
    term = json.loads((out / "termination-node0.json").read_text())
    assert term["exitReason"] == "Succeeded"
    assert (term["exitCode"], term["step"], term["totalSteps"]) == (0, 5, 5)
    assert term["metrics"] == {"loss": 0.25, "val_accuracy": 0.75}


def test_a_failing_rank_is_classified_and_named(tmp_path: Path) -> None:
    """Rank 1 raises: the job fails with UserError and the message quotes rank 1's error, not
    rank 0's "connection closed by peer" that follows from it."""
    code = (
        "import os, torch.distributed as d; d.init_process_group('gloo');"
        "r = d.get_rank();\n"
        "if r == 1: raise RuntimeError('boom on rank 1')\n"
        "d.barrier()"
    )
    job = write_job(tmp_path, "fails", ["python", "-c", code], parallelism={"procsPerNode": 2})
    port = free_port_range(3)
    proc = run_cli(["run", str(job), "--local", "--metrics-port", str(port)], tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    term = json.loads(
        (tmp_path / "trainforge-output" / "fails" / "termination-node0.json").read_text()
    )
    assert term["exitReason"] == "UserError"
    assert term["message"] == "rank 1 exited 1: RuntimeError: boom on rank 1"


def test_a_missing_command_is_permanent_and_named(tmp_path: Path) -> None:
    job = write_job(tmp_path, "typo", ["trainn.py"])
    proc = run_cli(["run", str(job), "--local"], tmp_path)
    assert proc.returncode == 127, proc.stdout[-3000:] + proc.stderr[-3000:]
    term = json.loads(
        (tmp_path / "trainforge-output" / "typo" / "termination-node0.json").read_text()
    )
    assert term["exitReason"] == "CommandNotFound"
    assert "'trainn.py' not found on PATH" in term["message"]

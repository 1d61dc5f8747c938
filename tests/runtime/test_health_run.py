"""A real bad run: digits with an absurd learning rate hits NaN loss, `nan_loss: stop` ends the
job with exit code 65 and the finding reaches the termination message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runtime_helpers import REPO, free_port_range

SPEC = """\
apiVersion: trainforge.io/v1alpha1
kind: TrainingJob
metadata: {name: digits-nan}
spec:
  command: ["python", "-m", "trainforge_runtime.trainers.digits"]
  hyperparameters: {epochs: 1, lr: 1.0e+30, batch_size: 64, seed: 0}
  parallelism: {layout: data, nodes: 1, procsPerNode: 1, backend: gloo}
  health:
    rules:
      - {rule: nan_loss, action: stop}
      - {rule: loss_not_decreasing, action: warn, params: {window: 1000}}
"""


def test_nan_loss_stop_exits_65_with_the_finding(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "training_image"), str(REPO / "operator"), str(REPO / "api")]
    )
    port = free_port_range(2)  # the launcher, then its rank
    proc = subprocess.run(
        ["nice", "-n", "5", sys.executable, "-m", "trainforge_runtime.cli", "run", str(spec),
         "--local", "--metrics-port", str(port)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 65, proc.stdout[-3000:] + proc.stderr[-3000:]
    term = json.loads(
        (tmp_path / "trainforge-output/digits-nan/termination-node0.json").read_text()
    )
    assert term["exitReason"] == "HealthStop"
    assert [f["rule"] for f in term["findings"]] == ["nan_loss"]  # once, not every step
    assert term["findings"][0]["action"] == "stop"
    assert "nan_loss" in term["message"]
    # Local mode's c10d rendezvous allows runPolicy.maxRestarts (3) in-place restarts, but a
    # health stop is permanent: the rank ran once, not four times.
    stops = proc.stdout.count("[node0/rank0]: trainforge: health rule nan_loss stopped the job")
    assert stops == 1, proc.stdout[-3000:]

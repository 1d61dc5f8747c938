"""Local mode's trials in the shape of a TrainingJob: the stop reason tells a pruned trial from one
stopped because the sweep ended, as the stop-reason annotation does in the cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainforge_runtime.sweep import LocalTrial
from trainforge_sweep.trials import PRUNED, SWEEP_ENDED, record_from_job

from .test_engine import spec_of


@pytest.mark.parametrize(("reason", "state"), [(PRUNED, "Pruned"), (SWEEP_ENDED, "Stopped")])
def test_a_stopped_local_trial_keeps_its_reason(tmp_path: Path, reason: str, state: str) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = subprocess.Popen(sleeper, start_new_session=True)  # as _start does: own group
    trial = LocalTrial(0, "s-0", {"lr": 0.01}, 1, tmp_path, proc)  # port 1: nothing listens
    trial.stop(reason)
    proc.wait(timeout=30)
    trial.poll()
    assert trial.phase == "Stopped"
    record = record_from_job(trial.as_job(), spec_of().objectives)
    assert record is not None
    assert record.state == state

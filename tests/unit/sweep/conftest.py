from __future__ import annotations

from typing import Any

DIGITS = ["python", "-m", "trainforge_runtime.trainers.digits"]


def sweep_spec(**changes: Any) -> dict[str, Any]:
    """A valid sweep spec (wire form) with `changes` merged at the top level."""
    spec: dict[str, Any] = {
        "objective": {"metric": "test_accuracy", "intermediateMetric": "val_accuracy"},
        "parameters": [
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            {"name": "hidden", "type": "int", "low": 16, "high": 128, "step": 16},
            {"name": "opt", "type": "categorical", "choices": ["adam", "sgd"]},
        ],
        "algorithm": {"type": "tpe", "seed": 3},
        "earlyStopping": {"type": "median", "startupTrials": 1},
        "maxTrials": 6,
        "parallelTrials": 2,
        "trialTemplate": {"command": DIGITS, "hyperparameters": {"epochs": 3}},
    }
    spec.update(changes)
    return spec

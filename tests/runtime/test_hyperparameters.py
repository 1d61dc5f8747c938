"""Hyperparameters reach a plain script as env and a typed JSON file by default, and as
`--name=value` arguments only on request (an argparse script fails on unknown flags)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime_helpers import SCRIPTS, make_context, run_launcher

HPS = {"lr": 0.001, "epochs": 3, "layers": [64, 32], "amp": True}


def run_hparams(tmp_path: Path, **extra: Any) -> list[dict[str, Any]]:
    cmd = ["python", str(SCRIPTS / "plain_hparams.py")]
    ctx = make_context("hp", command=cmd, nproc=2, hyperparameters=HPS)
    ctx["args"] = ["--tag", "x"]
    ctx.update(extra)
    res = run_launcher(ctx, tmp_path)
    assert res.code == 0, res.proc.stderr[-2000:]
    return [json.loads((res.run_dir / f"hp-{r}.json").read_text()) for r in range(2)]


def test_default_env_and_typed_file_no_args(tmp_path: Path) -> None:
    for seen in run_hparams(tmp_path):
        assert seen["file"] == HPS  # typed: float, int, list, bool
        assert seen["env"]["TRAINFORGE_HP_LR"] == "0.001"
        assert seen["env"]["TRAINFORGE_HP_EPOCHS"] == "3"
        assert seen["env"]["TRAINFORGE_HP_LAYERS"] == "[64,32]"
        assert seen["env"]["TRAINFORGE_HP_AMP"] == "true"
        assert seen["args"] == {"tag": "x", "lr": None, "epochs": None, "layers": None, "amp": None}


def test_args_on_request_after_the_spec_args(tmp_path: Path) -> None:
    for seen in run_hparams(tmp_path, hyperparametersAs=["args"]):
        assert seen["args"] == {
            "tag": "x",
            "lr": 0.001,
            "epochs": 3,
            "layers": "[64,32]",
            "amp": "true",
        }
        assert seen["file"] is None
        assert set(seen["env"]) == set()

"""How `spec.hyperparameters` reach a user's own script, per `spec.hyperparametersAs`.

A script that never imports trainforge reads them the usual ways: env `TRAINFORGE_HP_<NAME>`
(strings), a JSON file at `$TRAINFORGE_HP_FILE` (typed), or `--name=value` arguments appended
after `spec.args` (only on request: an argparse script fails on flags it does not know).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainforge_api.context import ENV_HP_FILE, ENV_HP_PREFIX, JobContext
from trainforge_api.termination import strict_dumps

HP_FILE_NAME = "hyperparameters.json"


def env_name(name: str) -> str:
    """`learning_rate` and `learning-rate` both become TRAINFORGE_HP_LEARNING_RATE."""
    return ENV_HP_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def as_text(value: Any) -> str:
    """One value as env or argument text: booleans as true/false, lists and maps as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def hp_env(hps: Mapping[str, Any]) -> dict[str, str]:
    return {env_name(k): as_text(v) for k, v in hps.items()}


def hp_args(hps: Mapping[str, Any]) -> list[str]:
    """`--name=value` per hyperparameter, in the spec's order; `=` keeps a value starting with
    `-` from reading as a flag."""
    return [f"--{k}={as_text(v)}" for k, v in hps.items()]


def hp_channels(ctx: JobContext, run_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The env to add for every rank and the arguments to append, writing the JSON file (always
    into the run directory, so it exists even when only env or args were asked for)."""
    path = run_dir / HP_FILE_NAME
    path.write_text(strict_dumps(ctx.hyperparameters, indent=2))
    env: dict[str, str] = {}
    if "file" in ctx.hyperparameters_as:
        env[ENV_HP_FILE] = str(path)
    if "env" in ctx.hyperparameters_as:
        env.update(hp_env(ctx.hyperparameters))
    args = hp_args(ctx.hyperparameters) if "args" in ctx.hyperparameters_as else []
    return env, args

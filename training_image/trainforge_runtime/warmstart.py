"""Warm start: begin a run from an earlier run's model instead of random weights.

A TrainingSchedule with `warmStart: champion | latest` passes the artifacts URI of the champion (or
of the latest successful run) to its new run as `TRAINFORGE_WARM_START_URI`. The trainer loads that
run's `model/model.safetensors` (the bundle `finish()` uploaded) into its freshly built model
before parallelising it, through the same fsspec storage code as the artifacts (the job's artifacts
endpoint and credentials). A checkpoint of the run itself still wins: `resume()` restores over it,
so a restarted gang continues where it was, not from the champion again.

A model that no longer fits (the schedule's architecture changed) or a champion whose files are
gone is not loaded: the run starts from scratch and says why, rather than failing every run of the
schedule. An unreachable store is transient (exit 75), so the gang is retried.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from trainforge_api.exitcodes import TRANSIENT, RuntimeExit
from trainforge_runtime.artifacts import open_fs, with_retries

log = logging.getLogger(__name__)
ENV_WARM_START = "TRAINFORGE_WARM_START_URI"
MODEL_FILE = "model/model.safetensors"  # the bundle finish() uploads (bundle.py)


@dataclass(frozen=True)
class WarmStart:
    """What happened: the URI asked for, whether its weights were loaded, and why not."""

    uri: str
    loaded: bool
    reason: str = ""


def warm_start_uri() -> str | None:
    return os.environ.get(ENV_WARM_START) or None


def _read_model(uri: str, endpoint: str | None, retries: int) -> bytes | None:
    def read() -> bytes | None:
        fs, root = open_fs(uri, endpoint)
        try:
            return bytes(fs.cat_file(f"{root}/{MODEL_FILE}"))
        except FileNotFoundError:
            return None

    try:
        return with_retries(f"reading the warm-start model {uri}", read, retries=retries, backoff=1)
    except Exception as err:
        raise RuntimeExit(TRANSIENT, f"warm start: {err}") from err


def load_into(
    model: nn.Module, uri: str, endpoint: str | None = None, retries: int = 3
) -> WarmStart:
    """Load `<uri>/model/model.safetensors` into `model` (a plain, not yet parallelised module)."""
    from safetensors.torch import load

    data = _read_model(uri, endpoint, retries)
    if data is None:
        return WarmStart(uri, False, f"{uri}/{MODEL_FILE} does not exist")
    state = load(data)
    problem = mismatch(model, state)
    if problem:  # checked first: load_state_dict copies what fits before it raises
        return WarmStart(uri, False, f"the model does not fit: {problem}")
    model.load_state_dict(state, strict=True)
    return WarmStart(uri, True)


def mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """Why `state` cannot be loaded into `model` (missing or extra keys, sizes); "" if it can."""
    own = model.state_dict()
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    problems += [
        f"size mismatch for {k}: {tuple(state[k].shape)} saved, {tuple(v.shape)} now"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    return "; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else "")

"""Warm start through the real launcher: a run given TRAINFORGE_WARM_START_URI (what a
TrainingSchedule with `warmStart: champion | latest` passes) starts from that run's uploaded
model, not from random weights; a model that no longer fits is skipped, and the run trains from
scratch and says why.

The proof is a second run that cannot learn (learning rate 0): it scores exactly what the first
run scored (accuracy and loss), while the same run started cold scores like an untrained
network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from runtime_helpers import LaunchResult, make_context, run_launcher
from torch import nn

from trainforge_runtime import warmstart
from trainforge_runtime.trainers.digits import build_model as digits_model

DIGITS = ["python", "-m", "trainforge_runtime.trainers.digits"]
HP = {"epochs": 2, "batch_size": 64, "hidden": 32, "lr": 0.01, "seed": 0}


def digits(name: str, store: Path, **hp: Any) -> dict[str, Any]:
    ctx = make_context(name, command=DIGITS, nproc=1, hyperparameters={**HP, **hp})
    ctx["artifacts"] = {"uri": (store / name).as_uri()}  # the operator appends <ns>/<name>
    return ctx


def launch(context: dict[str, Any], tmp: Path, **env: str) -> LaunchResult:
    tmp.mkdir(parents=True)
    return run_launcher(context, tmp, **env)


def results(run: LaunchResult) -> dict[str, float]:
    assert run.code == 0, run.proc.stderr[-3000:]
    assert run.termination is not None
    return dict(run.termination["metrics"])


def test_warm_started_run_starts_from_the_previous_weights(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = launch(digits("first", store), tmp_path / "first")
    trained = results(first)
    assert trained["test_accuracy"] > 0.8, trained
    assert "warm_started" not in trained  # no warm start asked for
    model = store / "first" / "model" / "model.safetensors"
    assert model.is_file()

    frozen = {"epochs": 1, "lr": 0.0}
    warm = launch(
        digits("warm", store, **frozen),
        tmp_path / "warm",
        TRAINFORGE_WARM_START_URI=(store / "first").as_uri(),
    )
    cold = launch(digits("cold", store, **frozen), tmp_path / "cold")
    warm_scores, cold_scores = results(warm), results(cold)
    assert warm_scores["warm_started"] == 1.0
    assert warm_scores["test_accuracy"] == trained["test_accuracy"]
    assert warm_scores["test_loss"] == trained["test_loss"]
    assert cold_scores["test_accuracy"] < 0.5, cold_scores  # an untrained network
    assert "loaded the model from" in warm.proc.stderr + warm.proc.stdout


def save_bundle(root: Path, model: nn.Module) -> Path:
    from safetensors.torch import save_file

    (root / "model").mkdir(parents=True)
    save_file(dict(model.state_dict()), str(root / "model" / "model.safetensors"))
    return root


def test_a_model_that_no_longer_fits_or_is_gone_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    source = digits_model(32)
    uri = save_bundle(tmp_path / "run-1", source).as_uri()
    same = digits_model(32)
    assert warmstart.load_into(same, uri).loaded
    for mine, theirs in zip(same.state_dict().values(), source.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    wider = digits_model(64)
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    skipped = warmstart.load_into(wider, uri)
    assert not skipped.loaded
    assert skipped.reason.startswith("the model does not fit"), skipped
    assert "size mismatch" in skipped.reason, skipped
    gone = warmstart.load_into(digits_model(32), (tmp_path / "nothing-here").as_uri())
    assert not gone.loaded
    assert gone.reason.endswith("nothing-here/model/model.safetensors does not exist"), gone
    # A failed load leaves the fresh weights as they were: the run trains from scratch.
    assert all(torch.equal(v, before[k]) for k, v in wider.state_dict().items())


def test_gpt_warm_start_resumes_the_language_model(tmp_path: Path) -> None:
    """The character GPT the same way: frozen after a warm start, it scores the first run's
    val loss exactly; frozen from scratch, it scores like random weights."""
    store = tmp_path / "store"
    gpt = ["python", "-m", "trainforge_runtime.trainers.gpt"]

    def context(name: str, **hp: Any) -> dict[str, Any]:
        ctx = make_context(name, command=gpt, nproc=1, hyperparameters={"steps": 40, **hp})
        ctx["artifacts"] = {"uri": (store / name).as_uri()}
        return ctx

    trained = results(launch(context("first", lr=3e-3), tmp_path / "first"))
    frozen = {"steps": 1, "lr": 0.0}
    warm = results(
        launch(
            context("warm", **frozen),
            tmp_path / "warm",
            TRAINFORGE_WARM_START_URI=(store / "first").as_uri(),
        )
    )
    cold = results(launch(context("cold", **frozen), tmp_path / "cold"))
    assert warm["warm_started"] == 1.0
    assert warm["val_loss"] == trained["val_loss"]
    assert cold["val_loss"] > trained["val_loss"] + 0.3, (cold, trained)

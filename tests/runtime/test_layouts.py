"""Every layout trains for real: multi-process torch.distributed on gloo/CPU via the launcher.

Equivalence: with one seed and the same global batches, data (DDP), fsdp (FSDP2) and tensor (TP)
follow the single-process loss trajectory within LOSS_RTOL, and so does pipeline (GPipe, 2
microbatches); tiny differences come only from reduction order in the collectives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import LaunchResult, make_context, run_launcher

LOSS_RTOL = 1e-4  # relative, per step; observed max 9e-8 (float32 reduction order)
STEPS = 12
HP = {
    "steps": STEPS,
    "batch_size": 8,
    "seq_len": 16,
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 32,
    "lr": 0.01,
    "seed": 3,
    "microbatches": 2,
}

_cache: dict[str, LaunchResult] = {}


def run_layout(
    layout: str, tmp_path_factory: pytest.TempPathFactory, nproc: int = 2
) -> LaunchResult:
    """Run (once per session) the gpt trainer in `layout` with world `nproc`."""
    key = f"{layout}-{nproc}"
    if key not in _cache:
        extra = {"tensorParallel": 2} if layout == "tensor" else {}
        if layout == "pipeline":
            extra = {"pipelineStages": 2}
        ctx = make_context(f"gpt-{layout}", layout=layout, nproc=nproc, hyperparameters=HP, **extra)
        result = run_launcher(ctx, Path(tmp_path_factory.mktemp(key)))
        assert result.code == 0, f"{layout} run failed with exit {result.code}"
        _cache[key] = result
    return _cache[key]


def assert_close(a: list[float], b: list[float], what: str) -> None:
    assert len(a) == len(b) == STEPS
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert abs(x - y) <= LOSS_RTOL * abs(y), f"{what}: step {i + 1}: {x} vs {y}"


def assert_decreases(losses: list[float]) -> None:
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, f"loss did not decrease: {losses}"


def test_ddp_single_process_reference_loss_decreases(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    assert_decreases(run_layout("data", tmp_path_factory, nproc=1).losses())


def test_ddp_loss_decreases_and_matches_single_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    ddp = run_layout("data", tmp_path_factory).losses()
    assert_decreases(ddp)
    assert_close(ddp, run_layout("data", tmp_path_factory, nproc=1).losses(), "ddp vs single")


def test_fsdp_loss_decreases_and_matches_ddp(tmp_path_factory: pytest.TempPathFactory) -> None:
    fsdp = run_layout("fsdp", tmp_path_factory).losses()
    assert_decreases(fsdp)
    assert_close(fsdp, run_layout("data", tmp_path_factory).losses(), "fsdp vs ddp")


def test_tensor_parallel_loss_decreases_and_matches_ddp(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tp = run_layout("tensor", tmp_path_factory).losses()
    assert_decreases(tp)
    assert_close(tp, run_layout("data", tmp_path_factory).losses(), "tensor vs ddp")


def test_pipeline_loss_decreases_and_matches_single_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pp = run_layout("pipeline", tmp_path_factory).losses()
    assert_decreases(pp)
    assert_close(pp, run_layout("data", tmp_path_factory, nproc=1).losses(), "pipeline vs single")


def test_tensor_2d_mesh_dp_x_tp_matches_ddp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """World 4 = 2 data-parallel replicas x tensorParallel 2 (FSDP over dp, TP inside)."""
    tp_dp = run_layout("tensor", tmp_path_factory, nproc=4).losses()
    assert_close(tp_dp, run_layout("data", tmp_path_factory).losses(), "tensor 2x2 vs ddp")


def test_ddp_termination_message_carries_final_metrics(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    term = run_layout("data", tmp_path_factory).termination
    assert term is not None
    assert term["exitReason"] == "Succeeded"
    assert term["exitCode"] == 0
    assert term["step"] == STEPS
    assert term["metrics"]["val_loss"] > 0
    # No artifacts.uri and no MLflow: nothing would keep the report, so it is not drawn.
    run_dir = run_layout("data", tmp_path_factory).run_dir
    assert (run_dir / "artifacts" / "metadata.json").is_file()
    assert not (run_dir / "artifacts" / "report.html").exists()


@pytest.mark.parametrize("layout", ["data", "fsdp", "tensor", "pipeline"])
def test_final_val_loss_matches_single_process(
    layout: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Evaluation runs in every layout (pipeline: forward-only schedule) and agrees."""
    reference = run_layout("data", tmp_path_factory, nproc=1).termination
    term = run_layout(layout, tmp_path_factory).termination
    assert reference is not None
    assert term is not None
    want, got = reference["metrics"]["val_loss"], term["metrics"].get("val_loss")
    assert got is not None, f"{layout}: no val_loss in {term['metrics']}"
    assert abs(got - want) <= LOSS_RTOL * want, f"{layout}: val_loss {got} vs single {want}"

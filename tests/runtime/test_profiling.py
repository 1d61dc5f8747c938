"""The profiler writes a loadable Chrome trace and a summary with the phase split."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from trainforge_runtime.profiling import NullProfiler, maybe_profiler


def _train(prof: object, steps: int) -> None:
    model = torch.nn.Linear(32, 8)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(256, 32)), batch_size=32
    )
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = iter(data)
    for _ in range(steps):
        with prof.phase("data_wait"):  # type: ignore[attr-defined]
            (x,) = next(batches)
        with prof.phase("compute"):  # type: ignore[attr-defined]
            model(x).square().mean().backward()
            optim.step()
            optim.zero_grad()
        prof.step()  # type: ignore[attr-defined]


def test_trace_is_loadable_and_summary_has_phases(tmp_path: Path) -> None:
    with maybe_profiler(
        True, rank=0, ranks=[0], wait=1, warmup=1, active=3, out_dir=tmp_path
    ) as prof:
        _train(prof, steps=6)
    traces = sorted(tmp_path.glob("trace-rank0-*.json"))
    assert len(traces) == 1
    events = json.loads(traces[0].read_text())["traceEvents"]
    names = {e.get("name", "") for e in events}
    assert any(n.startswith("ProfilerStep#") for n in names)
    assert "trainforge/compute" in names
    assert any("addmm" in n for n in names)

    summary = json.loads((tmp_path / "summary-rank0.json").read_text())
    phases = summary["phases_ms"]
    assert summary["steps"] == 3
    assert phases["total"] > 0
    assert phases["data_loading"] > 0
    assert phases["compute"] > 0
    # Each phase is rounded to 1 µs on its own: three roundings may add up to 1.5 µs.
    assert phases["data_loading"] + phases["compute"] <= phases["total"] + 1.5e-3 + 1e-9
    assert summary["top_operators"]
    assert summary["top_operators"][0]["self_cpu_ms"] >= 0
    text = (tmp_path / "summary-rank0.txt").read_text()
    assert "data_loading" in text
    assert "top operators" in text


def test_other_ranks_and_disabled_get_a_noop(tmp_path: Path) -> None:
    for enabled, rank in ((True, 1), (False, 0)):
        with maybe_profiler(enabled, rank=rank, ranks=[0], out_dir=tmp_path) as prof:
            assert isinstance(prof, NullProfiler)
            _train(prof, steps=2)
    assert list(tmp_path.iterdir()) == []

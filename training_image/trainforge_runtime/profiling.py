"""Optional torch.profiler capture on selected ranks, with a summary people can act on.

`maybe_profiler(...)` yields an object with `.step()` (call once per training step) and
`.phase(name)` (wrap data loading in `phase("data_wait")` and the forward/backward in
`phase("compute")`). Per profiling cycle it writes into `out_dir`:

* `trace-rank<r>-<n>.json`: a Chrome trace (open in Perfetto or chrome://tracing);
* `summary-rank<r>.txt` / `.json`: the top operators by self CPU time, and the step time split
  into data loading, communication (gloo/nccl collectives) and compute (the rest).

On ranks not listed, or when disabled, it yields a no-op object so the training loop is the same.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from trainforge_api.trainingjob import Profiling

log = logging.getLogger(__name__)

PHASE_PREFIX = "trainforge/"
_DATA = re.compile(r"^(enumerate\(DataLoader\)|trainforge/data)")
_COMM = re.compile(
    r"(nccl|gloo|c10d::|all_?reduce|all_?gather|reduce_scatter|broadcast|barrier)", re.IGNORECASE
)
_STEP = "ProfilerStep"  # "ProfilerStep#N" in traces, "ProfilerStep*" in events()
TOP_N = 15


class Profiler(Protocol):
    """What the training loop sees: `step()` once per step, `phase(name)` around a phase."""

    def step(self) -> None: ...

    def phase(self, name: str) -> contextlib.AbstractContextManager[Any]: ...


def summary_path(out_dir: Path, rank: int) -> Path:
    """Where a rank's JSON summary goes; the training report reads it back."""
    return out_dir / f"summary-rank{rank}.json"


class NullProfiler:
    """Profiling off: same interface, no cost."""

    enabled = False
    summary: dict[str, Any] | None = None
    trace_files: list[Path] = []  # noqa: RUF012 - never mutated

    def step(self) -> None:
        return None

    def phase(self, name: str) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()


class TraceProfiler:
    """Wraps torch.profiler.profile; exports traces and summaries as cycles complete."""

    enabled = True

    def __init__(self, rank: int, out_dir: Path) -> None:
        self.rank = rank
        self.out_dir = out_dir
        self.summary: dict[str, Any] | None = None
        self.trace_files: list[Path] = []
        self._prof: Any = None
        self._totals = {"step_ms": 0.0, "data_ms": 0.0, "communication_ms": 0.0, "steps": 0}

    def step(self) -> None:
        self._prof.step()

    def phase(self, name: str) -> contextlib.AbstractContextManager[Any]:
        import torch

        return torch.profiler.record_function(PHASE_PREFIX + name)

    def on_trace_ready(self, prof: Any) -> None:
        trace = self.out_dir / f"trace-rank{self.rank}-{len(self.trace_files)}.json"
        prof.export_chrome_trace(str(trace))
        self.trace_files.append(trace)
        self.summary = self._summarise(prof)
        summary_path(self.out_dir, self.rank).write_text(json.dumps(self.summary, indent=2) + "\n")
        (self.out_dir / f"summary-rank{self.rank}.txt").write_text(
            render_text(
                self.summary,
                prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=TOP_N),
            )
        )
        log.info("profiler trace written to %s", trace)

    def _summarise(self, prof: Any) -> dict[str, Any]:
        events = list(prof.events())
        step_ms = _union_ms(e for e in events if e.name.startswith(_STEP))
        data_ms = _union_ms(e for e in events if _DATA.match(e.name))
        comm_ms = _union_ms(e for e in events if _COMM.search(e.name))
        steps = sum(1 for e in events if e.name.startswith(_STEP))
        t = self._totals
        t["step_ms"] += step_ms
        t["data_ms"] += data_ms
        t["communication_ms"] += comm_ms
        t["steps"] += steps
        compute_ms = max(t["step_ms"] - t["data_ms"] - t["communication_ms"], 0.0)
        return {
            "rank": self.rank,
            "steps": t["steps"],
            "phases_ms": {
                "data_loading": round(t["data_ms"], 3),
                "communication": round(t["communication_ms"], 3),
                "compute": round(compute_ms, 3),
                "total": round(t["step_ms"], 3),
            },
            "top_operators": _top_operators(prof),
            "traces": [p.name for p in self.trace_files],
        }


def _union_ms(events: Iterable[Any]) -> float:
    """Wall time covered by the events' intervals, overlaps counted once (nesting is common)."""
    spans = sorted((e.time_range.start, e.time_range.end) for e in events)
    total, cur_start, cur_end = 0.0, None, None
    for start, end in spans:
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total / 1000.0  # profiler times are in microseconds


def _top_operators(prof: Any, n: int = TOP_N) -> list[dict[str, Any]]:
    rows = [a for a in prof.key_averages() if not a.key.startswith((_STEP, PHASE_PREFIX))]
    rows.sort(key=lambda a: a.self_cpu_time_total, reverse=True)
    return [
        {
            "name": a.key,
            "calls": int(a.count),
            "self_cpu_ms": round(a.self_cpu_time_total / 1000.0, 3),
            "cpu_total_ms": round(a.cpu_time_total / 1000.0, 3),
        }
        for a in rows[:n]
    ]


def render_text(summary: dict[str, Any], table: str = "") -> str:
    """The human summary: phase split first (where time goes), then the operator table."""
    phases = summary["phases_ms"]
    total = phases["total"] or 1.0
    lines = [f"trainforge profile, rank {summary['rank']}, {summary['steps']} profiled steps", ""]
    lines += ["time per phase (ms, share of step time):"]
    for name in ("data_loading", "communication", "compute"):
        lines.append(f"  {name:<14} {phases[name]:>12.3f}  {phases[name] / total:6.1%}")
    lines += [f"  {'total':<14} {phases['total']:>12.3f}", "", "top operators by self CPU time:"]
    lines += [
        table
        or "\n".join(f"  {o['name']}: {o['self_cpu_ms']} ms" for o in summary["top_operators"])
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def maybe_profiler(
    enabled: bool,
    rank: int,
    ranks: Iterable[int] = (0,),
    wait: int = 1,
    warmup: int = 1,
    active: int = 3,
    repeat: int = 1,
    out_dir: str | Path = "profile",
) -> Iterator[NullProfiler | TraceProfiler]:
    """Profile this rank when enabled and listed in `ranks`; else yield a no-op profiler."""
    if not enabled or rank not in set(ranks):
        yield NullProfiler()
        return
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrapper = TraceProfiler(rank, out)
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(
        activities=activities,
        schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=repeat),
        on_trace_ready=wrapper.on_trace_ready,
        record_shapes=False,
    ) as prof:
        wrapper._prof = prof
        yield wrapper


def profiler_for(
    cfg: Profiling, rank: int, out_dir: Path
) -> contextlib.AbstractContextManager[NullProfiler | TraceProfiler]:
    """`maybe_profiler` configured by the job's `profiling` section."""
    return maybe_profiler(
        cfg.enabled,
        rank,
        cfg.ranks,
        cfg.wait,
        cfg.warmup,
        cfg.active,
        cfg.repeat,
        out_dir=out_dir,
    )

"""Step accounting: how long each step waited for data and computed, the throughput since the
previous step, and a GPU sample now and then.

Kept apart from where the numbers go (telemetry.py) because this part runs on the hot path of
every step and must stay a few clock reads and subtractions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch

from trainforge_runtime.metrics import WorkerMetrics
from trainforge_runtime.profiling import Profiler

T = TypeVar("T")
GPU_SAMPLE_SECONDS = 5.0


@dataclass(slots=True)
class StepTiming:
    """One step's split: `data_wait` inside `timed()`, `compute` the rest up to `step_end`."""

    data_wait: float
    compute: float
    elapsed: float  # since the previous step end: what throughput is measured over

    def rates(self, samples: int, tokens: int, world_size: int) -> dict[str, float]:
        """Gang-wide samples and tokens per second (each rank passes its own share)."""
        rates: dict[str, float] = {}
        if self.elapsed > 0 and samples:
            rates["samples_per_second"] = samples * world_size / self.elapsed
        if self.elapsed > 0 and tokens:
            rates["tokens_per_second"] = tokens * world_size / self.elapsed
        return rates

    def as_metrics(self) -> dict[str, float]:
        """The names the dataloader_bound health rule reads."""
        return {"data_wait_seconds": self.data_wait, "compute_seconds": self.compute}


class StepTimer:
    """Clocks the loop: `timed()` marks data wait, `lap()` closes a step."""

    def __init__(self) -> None:
        now = time.perf_counter()
        self._data_wait = 0.0
        self._compute_start = now
        self._last_step_end = now

    def timed(self, iterable: Iterable[T], profiler: Profiler) -> Iterator[T]:
        """Yield from `iterable`, timing each `next()` as data wait (the rest is compute)."""
        it = iter(iterable)
        while True:
            t0 = time.perf_counter()
            try:
                with profiler.phase("data_wait"):
                    item = next(it)
            except StopIteration:
                return
            t1 = time.perf_counter()
            self._data_wait = t1 - t0
            self._compute_start = t1
            yield item

    def lap(self) -> StepTiming:
        """The step that ends now; the next one's throughput is measured from here."""
        now = time.perf_counter()
        elapsed = now - self._last_step_end
        self._last_step_end = now
        return StepTiming(self._data_wait, now - self._compute_start, elapsed)


class GpuSampler:
    """GPU memory from torch, utilization through NVML when pynvml is installed, at most every
    `every` seconds: NVML calls cost too much for every step."""

    def __init__(
        self, device: torch.device, metrics: WorkerMetrics, every: float = GPU_SAMPLE_SECONDS
    ) -> None:
        self._device = device
        self._metrics = metrics
        self._every = every
        self._sampled = 0.0

    def sample(self, step_metrics: dict[str, float]) -> None:
        """Set the GPU gauges when due; utilization also goes into `step_metrics` for health."""
        if self._device.type != "cuda":
            return
        now = time.perf_counter()
        if now - self._sampled <= self._every:
            return
        self._sampled = now
        used = float(torch.cuda.memory_allocated(self._device))
        self._metrics.set("gpu_memory_used_bytes", used)
        try:
            util = torch.cuda.utilization(self._device) / 100.0
        except Exception:  # pynvml missing or NVML unavailable: memory only
            return
        self._metrics.set("gpu_utilization_ratio", util)
        step_metrics["gpu_utilization"] = util

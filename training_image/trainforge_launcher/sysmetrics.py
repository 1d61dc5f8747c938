"""What the launcher knows about its pod without any help from the training code: CPU and memory
of the launcher's process tree (from /proc), and each local rank's GPU through NVML.

Everything degrades to "no series": no /proc (not Linux), no NVML (no GPU, no driver) or a
process that vanished mid-read only leave gauges unset, never a crash or a fake 0.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("trainforge.launch")

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class TreeUsage:
    """CPU seconds (user + system) and resident memory of a process and its live descendants."""

    processes: int
    cpu_seconds: float
    rss_bytes: int


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, cpu seconds) from /proc/<pid>/stat; None if the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _rss(pid: int) -> int:
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_usage(root: int | None = None) -> TreeUsage | None:
    """Usage of `root` (default: this process) and every descendant; None without /proc."""
    root = os.getpid() if root is None else root
    if not PROC.is_dir():
        return None
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)], cpu[int(entry.name)] = stat
    tree = {root}
    grew = True
    while grew:  # parents before children is not guaranteed: repeat until stable
        found = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= found
        grew = bool(found)
    live = [pid for pid in tree if pid in cpu]
    return TreeUsage(len(live), sum(cpu[p] for p in live), sum(_rss(p) for p in live))


class Gpus:
    """NVML handles for the GPUs this pod may use, in CUDA's order (local rank i uses device i)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            indices = (
                [int(i) for i in visible.split(",") if i.strip().isdigit()]
                if visible
                else list(range(pynvml.nvmlDeviceGetCount()))
            )
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
            self._nvml = pynvml
        except Exception as exc:  # no driver, no GPU, no library: GPU series stay unset
            log.debug("NVML unavailable (%s): no GPU metrics", exc)

    @property
    def count(self) -> int:
        return len(self._handles)

    def sample(self, device: int) -> tuple[float, float] | None:
        """(utilization 0..1, memory used in bytes) of `device`, None if NVML cannot say."""
        if self._nvml is None or device >= len(self._handles):
            return None
        try:
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handles[device])
            mem = self._nvml.nvmlDeviceGetMemoryInfo(self._handles[device])
        except Exception:
            return None
        return float(util.gpu) / 100.0, float(mem.used)

"""What lets a job survive a gang restart: periodic checkpoints through checkpoint.py, resuming
from the newest one, and SIGTERM, which saves a checkpoint and exits 143 on every rank.

The stop and the checkpoints live together because they must agree: every rank has to stop at the
same step, or the collective save before the exit would deadlock.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from trainforge_api import exitcodes
from trainforge_api.context import JobContext
from trainforge_runtime.checkpoint import CheckpointManager
from trainforge_runtime.process_group import GangMember

log = logging.getLogger("trainforge")

STOP_CHECK_EVERY = 10  # steps between the all-reduce that agrees on stopping after SIGTERM


class Recovery:
    """Create it before anything that can block: it installs the SIGTERM handler."""

    def __init__(self, job: JobContext, member: GangMember, histogram: Any) -> None:
        self._job = job
        self._member = member
        self._histogram = histogram  # trainforge_checkpoint_seconds
        every = int(job.hyperparameters.get("stop_check_every", STOP_CHECK_EVERY))
        self._stop_check_every = max(every, 1)
        self._manager: CheckpointManager | None = None
        self._state: dict[str, Any] | None = None
        self._stop = threading.Event()
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        log.warning("rank %d got SIGTERM: stopping after this step", self._member.rank)
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def resume(self, state: dict[str, Any]) -> int | None:
        """Register `state` for checkpoints and restore the newest checkpoint into it; the step
        it was saved at, or None for a fresh start (or no `checkpoint.uri`)."""
        cfg = self._job.checkpoint
        if not cfg.uri:
            return None
        layout = self._job.parallelism.layout
        self._state = state
        self._manager = CheckpointManager(
            cfg.uri,
            cfg.every_steps,
            cfg.every_seconds,
            cfg.keep,
            rank=self._member.rank,
            world_size=self._member.world_size,
            sharded=layout != "data",
            layout=layout,
            endpoint=self._job.artifacts.s3_endpoint,
            histogram=self._histogram,
        )
        loaded = self._manager.load_latest(into=state)
        if loaded is None:
            return None
        log.info("rank %d resumed from checkpoint step %d", self._member.rank, loaded[0])
        return int(loaded[0])

    def save_if_due(self, step: int, force: bool = False) -> None:
        """Checkpoint when the schedule says so, or now with `force` (collective)."""
        if self._manager is not None and self._state is not None:
            self._manager.maybe_save(step, self._state, force=force)

    def stop_if_requested(self, step: int) -> None:
        """After SIGTERM on any rank: checkpoint and exit 143 on all ranks at the same step."""
        if not self._agreed_stop(step):
            return
        self.save_if_due(step, force=True)
        raise exitcodes.RuntimeExit(exitcodes.SIGTERM_EXIT, f"SIGTERM: stopped at step {step}")

    def _agreed_stop(self, step: int) -> bool:
        if not self._member.collective:
            return self.stop_requested
        if step % self._stop_check_every:
            return False
        return self._member.any_rank(self.stop_requested)

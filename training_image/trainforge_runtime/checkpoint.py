"""Checkpoints that survive gang restarts: periodic, atomic, verified, pruned.

Layout under the checkpoint URI (any fsspec URI: s3://, gs://, file://, a PVC path)::

    step-00000050/
        state.pt                 full model/optimizer state (layout data, rank 0 writes it)
        state-rank<r>.pt         each rank's own stage state (layout pipeline)
        __0_0.distcp ...         torch.distributed.checkpoint shards (fsdp/tensor, every rank)
        .metadata                DCP metadata (coordinator)
        extra-rank<r>.pt         per-rank extras: RNG state, sampler position, epoch ...
        manifest.json            written LAST by rank 0: step, world size, layout, files, sha256

Only a step directory with a manifest counts; loading checks every file it uses against the
manifest and falls back to the previous checkpoint when something is missing or corrupt.

The `state` dict passed to `maybe_save` maps names to `nn.Module`s, `Optimizer`s and plain
values. Modules and optimizers are saved as state dicts (sharded ones through DCP with
`get_state_dict`) and restored in place by `load_latest(into=state)`; other values are saved per
rank with `torch.save` and come back as values. Every rank must call `maybe_save`/`load_latest`
together: both use collectives when torch.distributed is initialised.

Storage faults: every write to the checkpoint store is retried `STORAGE_RETRIES` times with
exponential backoff (1, 2, 4, 8, 16 s: about 31 s of outage per file is ridden out and training
goes on). Past that the save raises `CheckpointStorageError`, which the worker exits with as a
transient failure (75): the operator restarts the gang from the newest complete checkpoint, up to
`runPolicy.maxRestarts`. A save cut short never leaves a manifest, so it never counts.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .artifacts import ArtifactUploadError, open_fs, put_bytes, put_file, sha256_file, with_retries

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FULL_STATE = "state.pt"
_STEP_DIR = re.compile(r"step-(\d+)$")


STORAGE_RETRIES = 5
STORAGE_BACKOFF_S = 1.0


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read."""


class CheckpointStorageError(CheckpointError):
    """The checkpoint store stayed unreachable through every retry of a write."""


def _step_dir(step: int) -> str:
    return f"step-{step:08d}"


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized()


def _split_state(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(modules, optimizers, extras) by value type."""
    modules = {k: v for k, v in state.items() if isinstance(v, torch.nn.Module)}
    optims = {k: v for k, v in state.items() if isinstance(v, torch.optim.Optimizer)}
    extras = {k: v for k, v in state.items() if k not in modules and k not in optims}
    return modules, optims, extras


def _plain_module(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel, so keys carry no `module.` prefix."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def _plain_state(modules: Mapping[str, Any], optims: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "modules": {k: _plain_module(m).state_dict() for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in optims.items()},
    }


class CheckpointManager:
    """Periodic checkpoints every `every_steps` steps and/or `every_seconds` seconds."""

    def __init__(
        self,
        uri: str,
        every_steps: int | None = None,
        every_seconds: float | None = None,
        keep: int = 2,
        *,
        rank: int = 0,
        world_size: int = 1,
        sharded: bool = False,
        layout: str = "data",
        endpoint: str | None = None,
        histogram: Any = None,
        retries: int = STORAGE_RETRIES,
        backoff: float = STORAGE_BACKOFF_S,
    ) -> None:
        if keep < 1:
            raise ValueError(f"checkpoint keep must be >= 1, got {keep}")
        self.uri = uri.rstrip("/")
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.keep = keep
        self.rank = rank
        self.world_size = world_size
        self.sharded = sharded
        # pipeline stages hold *different* tensors under the same names (each stage renumbers
        # its blocks), which DCP would take for replicas and deduplicate: save per rank instead
        self.format = (
            "per-rank" if sharded and layout == "pipeline" else "dcp" if sharded else "torch"
        )
        self.layout = layout
        self._histogram = histogram  # trainforge_checkpoint_seconds, if the caller has one
        self.retries = retries
        self.backoff = backoff
        self._fs, self._root = open_fs(self.uri, endpoint)
        self._last_time = time.monotonic()
        self._last_step: int | None = None
        self.last_save_seconds: float | None = None

    # --- saving ----------------------------------------------------------------------------------

    def due(self, step: int) -> bool:
        """Whether `step` should be saved; identical on every rank (rank 0 decides on time)."""
        if self._last_step is not None and step <= self._last_step:
            return False
        by_steps = bool(self.every_steps) and step % int(self.every_steps or 1) == 0
        by_time = bool(self.every_seconds) and (
            time.monotonic() - self._last_time >= float(self.every_seconds or 0)
        )
        if self.every_seconds and _dist_on():
            flag = [by_time]
            dist.broadcast_object_list(flag, src=0)
            by_time = bool(flag[0])
        return by_steps or by_time

    def maybe_save(self, step: int, state: Mapping[str, Any], force: bool = False) -> bool:
        """Save if due (or `force`); returns whether a checkpoint was written."""
        if not (force or self.due(step)):
            return False
        if self._last_step is not None and step <= self._last_step:
            return False  # already saved (e.g. forced save right after a resume)
        started = time.monotonic()
        self.save(step, state)
        self.last_save_seconds = time.monotonic() - started
        self._last_time = time.monotonic()
        self._last_step = step
        if self._histogram is not None:
            self._histogram.observe(self.last_save_seconds)
        log.info("checkpoint step %d saved to %s in %.2fs", step, self.uri, self.last_save_seconds)
        return True

    def save(self, step: int, state: Mapping[str, Any]) -> None:
        """Write checkpoint `step` now (collective when distributed)."""
        remote = f"{self._root}/{_step_dir(step)}"
        if self.rank == 0 and self._stored(f"look for {remote}", lambda: self._fs.exists(remote)):
            # leftover of a crashed attempt: no manifest
            self._stored(f"remove {remote}", lambda: self._fs.rm(remote, recursive=True))
        self._barrier()
        with tempfile.TemporaryDirectory(prefix=f"tf-ckpt-r{self.rank}-") as tmp:
            staging = Path(tmp)
            self._write_local(staging, state)
            mine = self._upload(staging, remote)
        entries = self._gather(mine)
        if self.rank == 0:
            manifest = {
                "step": step,
                "worldSize": self.world_size,
                "layout": self.layout,
                "format": self.format,
                "files": sorted(entries, key=lambda e: e["path"]),
                "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            data = json.dumps(manifest, indent=2).encode()
            self._stored(
                f"write {remote}/{MANIFEST}",
                lambda: put_bytes(self._fs, data, f"{remote}/{MANIFEST}"),
            )
            self._prune()
        self._barrier()

    def _write_local(self, staging: Path, state: Mapping[str, Any]) -> None:
        modules, optims, extras = _split_state(state)
        torch.save(extras, staging / f"extra-rank{self.rank}.pt")
        if self.format == "per-rank":
            torch.save(_plain_state(modules, optims), staging / self._own_state)
            return
        if self.format == "dcp":
            from torch.distributed.checkpoint.filesystem import FileSystemWriter
            from torch.distributed.checkpoint.state_dict_saver import save

            save(self._dcp_state(modules, optims), storage_writer=FileSystemWriter(staging))
            return
        if self.rank == 0:
            torch.save(_plain_state(modules, optims), staging / FULL_STATE)

    def _upload(self, staging: Path, remote: str) -> list[dict[str, Any]]:
        entries = []
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            rel = path.relative_to(staging).as_posix()
            self._stored(
                f"upload {remote}/{rel}",
                lambda path=path, rel=rel: put_file(self._fs, path, f"{remote}/{rel}"),
            )
            entries.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
        return entries

    def _stored(self, what: str, write: Any) -> Any:
        """One operation on the checkpoint store, retried through a short outage."""
        try:
            return with_retries(
                f"checkpoint: {what}",
                write,
                retries=self.retries,
                backoff=self.backoff,
                hint="The checkpoint store is unreachable; the gang restarts from the newest "
                "complete checkpoint.",
            )
        except ArtifactUploadError as err:
            raise CheckpointStorageError(str(err)) from err.__cause__

    def _prune(self) -> None:
        """Keep the newest `keep` complete checkpoints; drop older ones and stale partials."""
        complete = self._complete_steps()
        if not complete:
            return
        keep = set(complete[: self.keep])
        for step, path in self._step_dirs():
            if step not in keep and step < complete[0]:
                self._fs.rm(path, recursive=True)

    # --- loading ---------------------------------------------------------------------------------

    def _step_dirs(self) -> list[tuple[int, str]]:
        self._fs.invalidate_cache()
        try:
            paths = self._fs.ls(self._root, detail=False)
        except FileNotFoundError:
            return []
        found = []
        for path in paths:
            match = _STEP_DIR.search(path.rstrip("/"))
            if match:
                found.append((int(match.group(1)), path.rstrip("/")))
        return sorted(found, reverse=True)

    def _complete_steps(self) -> list[int]:
        """Steps with a manifest, newest first (manifest presence = complete)."""
        return [s for s, p in self._step_dirs() if self._fs.exists(f"{p}/{MANIFEST}")]

    def latest_step(self) -> int | None:
        steps = self._complete_steps()
        return steps[0] if steps else None

    def load_latest(
        self, into: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """Restore the newest valid checkpoint, or None when there is none.

        With `into` (the same kind of dict given to `maybe_save`), modules and optimizers are
        restored in place, the saved extras are written into `into`, and the merged dict returned.
        Without it (full-state checkpoints only), the raw state dicts and extras are returned.
        """
        if self.format == "dcp" and into is None:
            raise CheckpointError(
                "sharded checkpoints load in place: pass into={'model': model, 'optimizer': opt}"
            )
        candidates = self._broadcast(self._complete_steps() if self.rank == 0 else None)
        for step in candidates:
            with tempfile.TemporaryDirectory(prefix=f"tf-ckpt-r{self.rank}-") as tmp:
                staging = Path(tmp)
                problem = self._fetch(step, staging)
                problems = self._gather_problems(problem)
                if problems:
                    log.warning(
                        "checkpoint step %d unusable, trying an older one: %s", step, problems
                    )
                    continue
                state = self._restore(staging, into)
            self._last_step = step
            self._last_time = time.monotonic()
            log.info("resumed from checkpoint step %d at %s", step, self.uri)
            return step, state
        return None

    def _fetch(self, step: int, staging: Path) -> str | None:
        """Download and verify the files this rank needs; returns a problem or None."""
        remote = f"{self._root}/{_step_dir(step)}"
        try:
            manifest = json.loads(self._fs.cat_file(f"{remote}/{MANIFEST}"))
            files = {e["path"]: e for e in manifest["files"]}
            if self.format == "per-rank" and self._own_state not in files:
                return (
                    f"rank {self.rank}: no {self._own_state} (saved at world size "
                    f"{manifest.get('worldSize')}); pipeline checkpoints restore at the same size"
                )
            wanted = [p for p in files if self._needs(p, files)]
            for rel in wanted:
                local = staging / rel
                local.parent.mkdir(parents=True, exist_ok=True)
                self._fs.get_file(f"{remote}/{rel}", str(local))
                if sha256_file(local) != files[rel]["sha256"]:
                    return f"rank {self.rank}: {rel} fails its sha256 check"
        except Exception as err:  # any storage/parse error makes this step unusable
            return f"rank {self.rank}: {type(err).__name__}: {err}"
        return None

    def _needs(self, rel: str, files: Mapping[str, Any]) -> bool:
        if rel.startswith("extra-rank"):
            mine = f"extra-rank{self.rank}.pt"
            return rel == mine or (mine not in files and rel == "extra-rank0.pt")
        if self.format == "per-rank":
            return rel == self._own_state
        return rel == FULL_STATE or self.format == "dcp"

    @property
    def _own_state(self) -> str:
        return f"state-rank{self.rank}.pt"

    def _full_state_file(self, staging: Path) -> Path:
        return staging / (self._own_state if self.format == "per-rank" else FULL_STATE)

    def _restore(self, staging: Path, into: Mapping[str, Any] | None) -> dict[str, Any]:
        extra_files = sorted(staging.glob("extra-rank*.pt"))
        extras: dict[str, Any] = (
            torch.load(extra_files[0], weights_only=True) if extra_files else {}
        )
        if into is None:
            full = torch.load(self._full_state_file(staging), weights_only=True)
            return {**full["modules"], **full["optimizers"], **extras}
        modules, optims, _ = _split_state(into)
        if self.format == "dcp":
            from torch.distributed.checkpoint.filesystem import FileSystemReader
            from torch.distributed.checkpoint.state_dict_loader import load

            target = self._dcp_state(modules, optims)
            load(target, storage_reader=FileSystemReader(staging))
            self._set_dcp_state(modules, optims, target)
        else:
            full = torch.load(self._full_state_file(staging), weights_only=True)
            for name, module in modules.items():
                _plain_module(module).load_state_dict(full["modules"][name])
            for name, optim in optims.items():
                optim.load_state_dict(full["optimizers"][name])
        if isinstance(into, MutableMapping):
            into.update(extras)  # callers that keep their dict see the restored extras too
        return {**into, **extras}

    # --- DCP helpers -----------------------------------------------------------------------------

    @staticmethod
    def _only_model(modules: Mapping[str, torch.nn.Module]) -> tuple[str, torch.nn.Module]:
        if len(modules) != 1:
            raise CheckpointError(
                "sharded checkpoints need exactly one nn.Module in the state, "
                f"got {sorted(modules)}"
            )
        return next(iter(modules.items()))

    def _dcp_state(self, modules: Mapping[str, Any], optims: Mapping[str, Any]) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        name, model = self._only_model(modules)
        model_sd, optim_sd = get_state_dict(model, list(optims.values()))
        return {name: model_sd, "optimizers": optim_sd}

    def _set_dcp_state(
        self, modules: Mapping[str, Any], optims: Mapping[str, Any], loaded: dict[str, Any]
    ) -> None:
        from torch.distributed.checkpoint.state_dict import set_state_dict

        name, model = self._only_model(modules)
        set_state_dict(
            model,
            list(optims.values()),
            model_state_dict=loaded[name],
            optim_state_dict=loaded["optimizers"],
        )

    # --- collectives (no-ops without torch.distributed) ------------------------------------------

    def _barrier(self) -> None:
        if _dist_on():
            dist.barrier()

    def _broadcast(self, value: Any) -> Any:
        if not _dist_on():
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _gather(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not _dist_on():
            return entries
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, entries)
        merged = {e["path"]: e for part in everyone for e in part}
        return list(merged.values())

    def _gather_problems(self, problem: str | None) -> list[str]:
        if not _dist_on():
            return [problem] if problem else []
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, problem)
        return [p for p in everyone if p]

"""The user API inside each worker process: `ctx = trainforge_runtime.init()`.

`RuntimeContext` owns the process group, seeds, the metrics server, progress, health rules,
checkpoints, profiling and fault injection, so a training loop only calls `ctx.parallelize`,
`ctx.timed(loader)`, `ctx.forward_backward`, `ctx.step_end` and `ctx.finish`. Everything that runs
once per step hooks in at `step_end`; everything that runs once per job hooks in at `finish`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from trainforge_api import exitcodes
from trainforge_api.context import ENV_ATTEMPT, JobContext
from trainforge_api.termination import json_safe, strict_dumps
from trainforge_runtime.config import DEFAULT_RUN_DIR, ENV_METRICS_PORT, ENV_RUN_DIR, load_context
from trainforge_runtime.faults import maybe_inject_fault
from trainforge_runtime.layouts import LossFn, PipelinedModule, Topology, build_topology
from trainforge_runtime.layouts import parallelize as _parallelize
from trainforge_runtime.metrics import MetricsServer, WorkerMetrics
from trainforge_runtime.progress import ProgressTracker

log = logging.getLogger("trainforge")
T = TypeVar("T")

GPU_SAMPLE_SECONDS = 5.0
STOP_CHECK_EVERY = 10  # steps between the all-reduce that agrees on stopping after SIGTERM
REPORTED_KEYS = frozenset(
    {"loss", "val_loss", "accuracy", "val_accuracy", "lr", "grad_norm", "samples_per_second"}
)
PG_TIMEOUT = dt.timedelta(seconds=int(os.environ.get("TRAINFORGE_PG_TIMEOUT", "600")))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def resolve_backend(requested: str) -> str:
    """`auto` means NCCL when this process can see a GPU, gloo otherwise."""
    if requested == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if requested == "nccl" and not torch.cuda.is_available():
        raise exitcodes.InvalidContextError(
            "backend nccl needs a GPU but none is visible: set resources.gpus or backend: gloo"
        )
    return requested


def seed_everything(seed: int) -> None:
    """Same seed on every rank so all replicas build identical initial weights."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RuntimeContext:
    """Per-process runtime state; create it with `trainforge_runtime.init()`."""

    def __init__(self, job: JobContext, *, start_metrics: bool = True) -> None:
        self.job = job
        self.rank = _env_int("RANK", 0)
        self.world_size = _env_int("WORLD_SIZE", 1)
        self.local_rank = _env_int("LOCAL_RANK", 0)
        self.attempt = _env_int(ENV_ATTEMPT, 0)
        self.is_main = self.rank == 0
        self.hyperparameters: dict[str, Any] = dict(job.hyperparameters)
        self.backend = resolve_backend(job.parallelism.backend)
        self.device = self._pick_device()
        self.run_dir = Path(os.environ.get(ENV_RUN_DIR) or Path(DEFAULT_RUN_DIR) / job.job.name)
        self.artifacts_dir = self.run_dir / "artifacts"
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = WorkerMetrics(job.job.name, job.job.namespace, self.rank)
        self.progress = ProgressTracker() if self.is_main else None
        self.findings: list[dict[str, Any]] = []
        self.final_metrics: dict[str, float] = {}
        self.step = 0
        self._started = time.monotonic()
        self._health_fed_elsewhere = False  # step_end/finish: log_metrics must not feed health
        self._stop_requested = threading.Event()
        signal.signal(signal.SIGTERM, self._on_sigterm)  # before anything that can block
        self._server: MetricsServer | None = None
        self._data_wait = 0.0
        self._compute_start = time.perf_counter()
        self._rate_t0 = time.perf_counter()
        self._gpu_sampled = 0.0
        self._hooks: list[Callable[[int, dict[str, float]], None]] = []
        self._init_process_group()
        self.topology: Topology = build_topology(
            job.parallelism.layout,
            self.rank,
            self.world_size,
            job.parallelism.tensor_parallel,
            job.parallelism.pipeline_stages,
            self.device,
        )
        seed_everything(int(self.hyperparameters.get("seed", 0)))
        if start_metrics and job.metrics.enabled:
            self._start_metrics_server()
        self._health = self._make_health()
        self.metrics.init_findings([r.rule for r in job.health])
        self.history: dict[str, list[tuple[int, float]]] = {}
        self._ckpt: Any = None
        self._ckpt_state: dict[str, Any] | None = None
        self._exit_stack = contextlib.ExitStack()
        self.profiler = self._exit_stack.enter_context(self._make_profiler())
        self.tracker = self._make_tracker()

    # --- setup ---------------------------------------------------------------------------------
    def _pick_device(self) -> torch.device:
        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def _init_process_group(self) -> None:
        if dist.is_initialized():
            return
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        if "MASTER_PORT" not in os.environ:
            os.environ["MASTER_PORT"] = str(_free_port())
        dist.init_process_group(
            self.backend, rank=self.rank, world_size=self.world_size, timeout=PG_TIMEOUT
        )

    def _start_metrics_server(self) -> None:
        base = _env_int(ENV_METRICS_PORT, self.job.metrics.port)
        port = base + self.local_rank if base else 0
        try:
            self._server = MetricsServer(self.metrics, port, self.progress).start()
        except OSError as exc:
            log.warning("metrics server could not bind port %d (%s); metrics are off", port, exc)

    def _make_health(self) -> Any:
        if not self.job.health:
            return None
        from trainforge_runtime.health import HealthMonitor

        labels = {"job": self.job.job.name, "namespace": self.job.job.namespace}
        labels["rank"] = str(self.rank)
        return HealthMonitor(self.job.health, counter=self.metrics.findings_counter, labels=labels)

    def _make_profiler(self) -> contextlib.AbstractContextManager[Any]:
        from trainforge_runtime.profiling import maybe_profiler

        p = self.job.profiling
        return maybe_profiler(
            p.enabled,
            self.rank,
            p.ranks,
            p.wait,
            p.warmup,
            p.active,
            p.repeat,
            out_dir=self.artifacts_dir / "profile",
        )

    def _make_tracker(self) -> Any:
        if not self.is_main or self.job.tracking.mlflow is None:
            return None
        from trainforge_runtime.tracking import MlflowTracker

        tracker = MlflowTracker.from_context(self.job, self.rank)
        if tracker is not None:
            try:
                tracker.start(self.hyperparameters)
            except Exception as exc:  # tracking is a side channel, never fatal
                log.warning("mlflow tracking disabled: %s", exc)
                return None
        return tracker

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        log.warning("rank %d got SIGTERM: stopping after this step", self.rank)
        self._stop_requested.set()

    # --- properties ----------------------------------------------------------------------------
    @property
    def metrics_port(self) -> int | None:
        return self._server.port if self._server else None

    @property
    def dp_rank(self) -> int:
        return self.topology.dp_rank

    @property
    def dp_size(self) -> int:
        return self.topology.dp_size

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    # --- model ---------------------------------------------------------------------------------
    def parallelize(self, model: nn.Module, loss_fn: LossFn | None = None) -> nn.Module:
        """Apply the job's layout (see layouts.py); `loss_fn` is used by the pipeline schedule."""
        return _parallelize(model, self.topology, self.hyperparameters, loss_fn)

    def forward_backward(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
    ) -> torch.Tensor | None:
        """Forward and backward in any layout; this rank's loss (None off the last stage)."""
        if isinstance(model, PipelinedModule):
            return model.train_step(inputs, targets)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        return loss.detach()

    @torch.no_grad()
    def eval_loss(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
    ) -> float:
        """Forward-only loss of this rank's slice of a batch, averaged like `mean_loss`.

        Collective in every layout: each rank passes its data-parallel slice (pipeline stages
        run the schedule forward only; only the last stages hold a loss)."""
        if isinstance(model, PipelinedModule):
            return self.mean_loss(model.eval_step(inputs, targets))
        return self.mean_loss(loss_fn(model(inputs), targets))

    def mean_loss(self, loss: torch.Tensor | None) -> float:
        """The global-batch loss on every rank (averaged over replicas; pipeline: last stages)."""
        value = torch.zeros((), device=self.device) if loss is None else loss.detach().float()
        if not dist.is_initialized() or self.world_size == 1:
            return float(value)
        dist.all_reduce(value)
        holders = self.dp_size if self.topology.layout == "pipeline" else self.world_size
        return float(value) / holders

    def grad_norm(self, model: nn.Module) -> float:
        """Global L2 norm of the gradients, correct for sharded (DTensor) and staged params."""
        from torch.distributed.tensor import DTensor

        total = torch.zeros((), device=self.device)
        for p in model.parameters():
            if p.grad is None:
                continue
            g = p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
            total += g.detach().float().pow(2).sum()
        if self.topology.layout == "pipeline" and dist.is_initialized():
            dist.all_reduce(total, group=self.topology.mesh["pp"].get_group())
        return float(total.sqrt())

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Unsharded CPU copy of the weights on every rank (collective for sharded layouts)."""
        from torch.distributed.tensor import DTensor

        inner = model.stage_module if isinstance(model, PipelinedModule) else model
        inner = getattr(inner, "module", inner)  # DDP
        out: dict[str, torch.Tensor] = {}
        for key, value in inner.state_dict().items():
            full = value.full_tensor() if isinstance(value, DTensor) else value
            out[key] = full.detach().cpu().contiguous()
        return out

    # --- checkpoints ---------------------------------------------------------------------------
    def resume(self, state: dict[str, Any]) -> int:
        """Register what to checkpoint and restore the newest checkpoint into it.

        `state` maps names to modules, optimizers and plain values (see checkpoint.py). Returns
        the step to continue after (0 for a fresh start). A no-op without `checkpoint.uri`.
        """
        cfg = self.job.checkpoint
        if not cfg.uri:
            return 0
        from trainforge_runtime.checkpoint import CheckpointManager

        self._ckpt_state = state
        self._ckpt = CheckpointManager(
            cfg.uri,
            cfg.every_steps,
            cfg.every_seconds,
            cfg.keep,
            rank=self.rank,
            world_size=self.world_size,
            sharded=self.job.parallelism.layout != "data",
            layout=self.job.parallelism.layout,
            endpoint=self.job.artifacts.s3_endpoint,
            histogram=self.metrics.checkpoint_seconds,
        )
        loaded = self._ckpt.load_latest(into=state)
        if loaded is None:
            return 0
        step = int(loaded[0])
        self.step = step
        if self.progress is not None:
            self.progress.resumed_from_step = step
        log.info("rank %d resumed from checkpoint step %d", self.rank, step)
        return step

    def _maybe_checkpoint(self, step: int, force: bool = False) -> None:
        if self._ckpt is not None and self._ckpt_state is not None:
            self._ckpt.maybe_save(step, self._ckpt_state, force=force)

    # --- per step ------------------------------------------------------------------------------
    def timed(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield from `iterable`, timing each `next()` as data wait (the rest is compute)."""
        it = iter(iterable)
        while True:
            t0 = time.perf_counter()
            try:
                with self.profiler.phase("data_wait"):
                    item = next(it)
            except StopIteration:
                return
            t1 = time.perf_counter()
            self._data_wait = t1 - t0
            self._compute_start = t1
            yield item

    def set_total_steps(self, total: int) -> None:
        self.metrics.set("total_steps", total)
        if self.progress is not None:
            self.progress.total_steps = total

    def log_metrics(self, step: int, **metrics: float) -> None:
        """Publish metrics (Prometheus gauges with agreed names, all keys on /progress)."""
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        self.metrics.log(clean)
        if self.is_main:
            for key in REPORTED_KEYS.intersection(clean):
                self.history.setdefault(key, []).append((step, clean[key]))
            if self.tracker is not None:
                self.tracker.log_metrics(clean, step)
        if self.progress is not None:
            epoch = clean.get("epoch")
            self.progress.update(
                step,
                {k: v for k, v in clean.items() if k != "epoch"},
                epoch=None if epoch is None else int(epoch),
            )
        if self._health is not None and "val_loss" in clean and not self._health_fed_elsewhere:
            # validation runs outside step_end; the overfitting rule needs to see it
            self._observe_health(step, {"val_loss": clean["val_loss"]})

    def _log_without_health(self, step: int, metrics: dict[str, float]) -> None:
        self._health_fed_elsewhere = True
        try:
            self.log_metrics(step, **metrics)
        finally:
            self._health_fed_elsewhere = False

    def add_step_hook(self, hook: Callable[[int, dict[str, float]], None]) -> None:
        """Run `hook(step, metrics)` at every step end (checkpointing registers here)."""
        self._hooks.append(hook)

    def step_end(self, step: int, samples: int = 0, tokens: int = 0, **metrics: float) -> None:
        """Close one optimizer step: timings, throughput, metrics, health, checkpoint, profiler,
        fault injection and SIGTERM (checkpoint, then exit 143 on every rank at the same step)."""
        now = time.perf_counter()
        self.step = step
        compute = now - self._compute_start
        self.metrics.observe_step(self._data_wait, compute)
        self.metrics.set("train_step", step)
        elapsed = now - self._rate_t0
        self._rate_t0 = now
        if elapsed > 0 and samples:
            metrics.setdefault("samples_per_second", samples * self.world_size / elapsed)
        if elapsed > 0 and tokens:
            metrics.setdefault("tokens_per_second", tokens * self.world_size / elapsed)
        if self.device.type == "cuda" and now - self._gpu_sampled > GPU_SAMPLE_SECONDS:
            self._sample_gpu(metrics)
            self._gpu_sampled = now
        self._log_without_health(step, metrics)
        if self.progress is not None and "samples_per_second" in metrics:
            self.progress.samples_per_second = round(metrics["samples_per_second"], 2)
        if self._health is not None:
            timing = {"data_wait_seconds": self._data_wait, "compute_seconds": compute}
            self._observe_health(step, {**metrics, **timing})
        self._maybe_checkpoint(step)
        self.profiler.step()
        for hook in self._hooks:
            hook(step, metrics)
        maybe_inject_fault(self.rank, step, self.attempt)
        if self._agreed_stop():
            self._maybe_checkpoint(step, force=True)
            raise exitcodes.RuntimeExit(exitcodes.SIGTERM_EXIT, f"SIGTERM: stopped at step {step}")

    def _sample_gpu(self, metrics: dict[str, float]) -> None:
        """GPU memory from torch; utilization through NVML when pynvml is installed."""
        used = float(torch.cuda.memory_allocated(self.device))
        self.metrics.set("gpu_memory_used_bytes", used)
        try:
            util = torch.cuda.utilization(self.device) / 100.0
        except Exception:  # pynvml missing or NVML unavailable: memory only
            return
        self.metrics.set("gpu_utilization_ratio", util)
        metrics["gpu_utilization"] = util

    def _observe_health(self, step: int, metrics: dict[str, float]) -> None:
        if self._health is None:
            return
        from trainforge_runtime.health import HealthStop

        try:
            new = self._health.observe(step, metrics)
        except HealthStop as stop:
            self._record_finding(stop.finding.to_dict())
            raise exitcodes.RuntimeExit(exitcodes.HEALTH_STOP, str(stop)) from None
        for finding in new:
            self._record_finding(finding.to_dict())

    def _record_finding(self, finding: dict[str, Any]) -> None:
        self.findings.append(finding)
        if self.progress is not None:
            self.progress.add_finding(finding)

    def _agreed_stop(self) -> bool:
        """All ranks stop at the same step, so collective checkpoints cannot deadlock."""
        local = self._stop_requested.is_set()
        if not dist.is_initialized() or self.world_size == 1:
            return local
        every = int(self.hyperparameters.get("stop_check_every", STOP_CHECK_EVERY))
        if self.step % max(every, 1):
            return False
        flag = torch.tensor(1.0 if local else 0.0, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def set_phase(self, phase: str) -> None:
        if self.progress is not None:
            self.progress.set_phase(phase)

    # --- end of job ----------------------------------------------------------------------------
    def finish(
        self,
        metrics: dict[str, float] | None = None,
        *,
        model: nn.Module | None = None,
        model_config: dict[str, Any] | None = None,
        labels: list[str] | None = None,
        tokenizer: dict[str, Any] | str | os.PathLike[str] | None = None,
        dataset_fingerprint: str | None = None,
        confusion_matrix: Any = None,
        class_names: list[str] | None = None,
        **final_metrics: float,
    ) -> dict[str, Any]:
        """Final metrics (a dict and/or keywords), model bundle + metadata, report and artifact
        upload (rank 0), summary, teardown. Collective when `model` is given: call on every rank.
        """
        merged = {**(metrics or {}), **final_metrics}
        self.final_metrics.update({k: float(v) for k, v in merged.items()})
        self._log_without_health(self.step, self.final_metrics)
        self._exit_stack.close()  # flush the profiler before the report reads its summary
        export = self.export_state_dict(model) if model is not None else None
        artifacts = None
        if self.is_main:
            bundle = {"model_config": model_config, "labels": labels, "tokenizer": tokenizer}
            self._write_bundle(export, bundle, dataset_fingerprint)
            self._write_report(confusion_matrix, class_names)
            artifacts = self._upload_artifacts()
            if self.tracker is not None:
                self.tracker.log_artifacts(self.artifacts_dir)
                self.tracker.end("FINISHED")
        summary = self.write_summary("Succeeded", artifacts=artifacts)
        self.set_phase("done")
        self.close()
        return summary

    def export_state_dict(self, model: nn.Module) -> ModelExport:
        """Full, unsharded CPU weights for the bundle; complete on rank 0 only (collective)."""
        layout = self.topology.layout
        if isinstance(model, PipelinedModule):
            return self._gather_pipeline_stages(model)
        if layout in ("fsdp", "tensor") and dist.is_initialized():
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_model_state_dict,
            )

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return ModelExport(get_model_state_dict(model, options=options), "full")
        return ModelExport(self.full_state_dict(model), "full")

    def _gather_pipeline_stages(self, model: PipelinedModule) -> ModelExport:
        """Stage state dicts of the first replica gathered to rank 0 and renumbered into one
        model; if the stage keys cannot be merged, each stage keeps a `stageN.` prefix."""
        mine = None
        if self.dp_rank == 0:
            mine = (self.topology.mp_rank, self.full_state_dict(model))
        gathered: list[Any] = [None] * self.world_size if self.is_main else []
        dist.gather_object(mine, gathered if self.is_main else None, dst=0)
        if not self.is_main:
            return ModelExport({}, "pipeline")
        stages = sorted(x for x in gathered if x is not None)
        return merge_pipeline_stages([sd for _, sd in stages])

    def _write_bundle(
        self, export: ModelExport | None, bundle: dict[str, Any], fingerprint: str | None
    ) -> None:
        """`model/` (weights, config, labels/tokenizer) and `metadata.json` in artifacts_dir."""
        from trainforge_runtime.artifacts import build_model_bundle, write_metadata

        extra: dict[str, Any] = {"job": self.job.job.name, "attempt": self.attempt}
        if export is not None:
            build_model_bundle(
                export.state,
                self.artifacts_dir / "model",
                {**(bundle["model_config"] or {}), "stateDict": export.kind},
                labels=bundle["labels"],
                tokenizer=bundle["tokenizer"],
            )
            extra["modelStateDict"] = export.kind
            extra["modelDir"] = "model"
        write_metadata(
            self.artifacts_dir,
            hyperparameters=self.hyperparameters,
            metrics=json_safe(split_metrics(self.final_metrics)),
            dataset_fingerprint=fingerprint,
            image=self.job.image,
            layout=self.job.parallelism.layout,
            world_size=self.world_size,
            duration_seconds=round(time.monotonic() - self._started, 3),
            extra=extra,
        )

    def _write_report(self, confusion_matrix: Any, class_names: list[str] | None) -> None:
        """The HTML report is a convenience: failing to draw it never fails the job."""
        from trainforge_runtime.report import render_report

        profile = self.artifacts_dir / "profile" / f"summary-rank{self.rank}.json"
        try:
            render_report(
                self.artifacts_dir / "report.html",
                self.history,
                confusion_matrix=confusion_matrix,
                profile_summary=json.loads(profile.read_text()) if profile.exists() else None,
                findings=self.findings,
                metadata={
                    "job": f"{self.job.job.namespace}/{self.job.job.name}",
                    "layout": self.job.parallelism.layout,
                    "world size": self.world_size,
                    "attempt": self.attempt,
                    **{f"final {k}": round(v, 5) for k, v in self.final_metrics.items()},
                },
                class_names=class_names,
            )
        except Exception as exc:
            log.warning("training report not written: %s", exc)

    def _upload_artifacts(self) -> dict[str, Any] | None:
        uri = self.job.artifacts.uri
        if not uri:
            return None
        self.set_phase("uploading")
        from trainforge_runtime.artifacts import ArtifactUploadError, upload_artifacts

        try:
            result = upload_artifacts(
                self.artifacts_dir,
                uri,
                endpoint=self.job.artifacts.s3_endpoint,
                retries=self.job.artifacts.upload_retries,
            )
        except ArtifactUploadError as exc:
            raise exitcodes.RuntimeExit(exitcodes.UPLOAD_FAILED, str(exc)) from exc
        return {"uri": result.uri, "files": result.files, "bytes": result.bytes}

    def write_summary(
        self, exit_reason: str, artifacts: dict[str, Any] | None = None, message: str = ""
    ) -> dict[str, Any]:
        """The per-rank summary the launcher turns into the termination message."""
        summary: dict[str, Any] = {
            "exitReason": exit_reason,
            "step": self.step,
            "metrics": self.final_metrics or (dict(self.progress.metrics) if self.progress else {}),
            "findings": self.findings,
        }
        if self.progress is not None:
            summary["totalSteps"] = self.progress.total_steps
            if self.progress.resumed_from_step is not None:
                summary["resumedFromStep"] = self.progress.resumed_from_step
        if artifacts:
            summary["artifacts"] = artifacts
        if message:
            summary["message"] = message[:500]
        path = self.run_dir / f"summary-rank{self.rank}.json"
        path.write_text(strict_dumps(summary))
        return summary

    def close(self) -> None:
        """Stop the metrics server and leave the process group (idempotent)."""
        self._exit_stack.close()
        if self._server is not None:
            linger = self.job.metrics.linger_seconds
            if linger:  # let Prometheus scrape the final values before the pod goes away
                log.info("serving final metrics for %ds (metrics.lingerSeconds)", linger)
                time.sleep(linger)
            self._server.stop()
            self._server = None
        if dist.is_initialized():
            try:
                dist.barrier()
            finally:
                dist.destroy_process_group()


@dataclass
class ModelExport:
    """Weights for the bundle and how they were assembled (`full`, `pipeline-merged`, ...)."""

    state: dict[str, torch.Tensor]
    kind: str


_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.*)$")


def merge_pipeline_stages(stages: list[dict[str, torch.Tensor]]) -> ModelExport:
    """One state dict from per-stage ones: `blocks.i` of stage k becomes `blocks.(offset_k + i)`.

    Falls back to `stage{k}.`-prefixed keys (kind `pipeline-per-stage`) on any key collision.
    """
    merged: dict[str, torch.Tensor] = {}
    offset = 0
    for state in stages:
        count = 0
        for key, value in state.items():
            match = _BLOCK_KEY.match(key)
            if match:
                index = int(match.group(1))
                count = max(count, index + 1)
                key = f"blocks.{offset + index}.{match.group(2)}"
            if key in merged:
                return ModelExport(
                    {f"stage{k}.{n}": v for k, sd in enumerate(stages) for n, v in sd.items()},
                    "pipeline-per-stage",
                )
            merged[key] = value
        offset += count
    return ModelExport(merged, "pipeline-merged")


def split_metrics(final: dict[str, float]) -> dict[str, dict[str, float]]:
    """Final metrics grouped by prefix: `test_*`, `val_*`, the rest is train."""
    out: dict[str, dict[str, float]] = {"train": {}, "val": {}, "test": {}}
    for key, value in final.items():
        split, _, name = key.partition("_")
        if split in ("val", "test") and name:
            out[split][name] = value
        else:
            out["train"][key.removeprefix("train_")] = value
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CURRENT: RuntimeContext | None = None


def init(context: JobContext | None = None, *, start_metrics: bool = True) -> RuntimeContext:
    """Read the job context and env, join the process group, seed, start metrics."""
    global _CURRENT
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s rank=%(process)d %(levelname)s %(message)s"
    )
    job = context or load_context()
    _CURRENT = RuntimeContext(job, start_metrics=start_metrics)
    return _CURRENT


def run(main: Callable[[], Any]) -> None:
    """Run a trainer's main and exit with the code the operator expects (see exitcodes)."""
    code = exitcodes.SUCCESS
    try:
        main()
    except exitcodes.RuntimeExit as exc:
        code = exc.code
        print(f"trainforge: {exc.message}", file=sys.stderr, flush=True)
        _summarize_failure(exitcodes.reason_for(code), exc.message)
    except Exception as exc:
        code = _failure_code(exc)
    sys.stdout.flush()
    sys.stderr.flush()
    if code != exitcodes.SUCCESS:
        os._exit(code)  # skip teardown that could hang on dead peers


def _failure_code(exc: Exception) -> int:
    """Exit code and summary for an exception out of the trainer: a lost peer or a network
    failure is retryable (75); anything else is the user's error (1)."""
    if exitcodes.is_peer_failure(exc):
        print(f"trainforge: a peer rank failed: {exc}", file=sys.stderr, flush=True)
        _summarize_failure(exitcodes.PEER_FAILURE, str(exc))
        return exitcodes.TRANSIENT
    if isinstance(exc, dist.DistBackendError | dist.DistNetworkError | TimeoutError):
        print(f"trainforge: transient distributed failure: {exc}", file=sys.stderr, flush=True)
        _summarize_failure("Transient", str(exc))
        return exitcodes.TRANSIENT
    logging.getLogger("trainforge").exception("training failed")
    _summarize_failure("UserError", f"{type(exc).__name__}: {exc}")
    return exitcodes.USER_ERROR


def _summarize_failure(reason: str, message: str) -> None:
    if _CURRENT is None:
        return
    with contextlib.suppress(OSError):
        _CURRENT.write_summary(reason, message=message)
    if _CURRENT.tracker is not None:
        _CURRENT.tracker.end("KILLED" if reason == "Terminated" else "FAILED")

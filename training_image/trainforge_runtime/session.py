"""The user API inside each worker process: `ctx = trainforge_runtime.init()`.

`RuntimeContext` is a façade: a training loop only calls `ctx.parallelize`, `ctx.timed(loader)`,
`ctx.forward_backward`, `ctx.step_end` and `ctx.finish`, and each call is passed on to the module
that owns that concern (process_group, model_ops, steps, telemetry, findings, recovery, export,
bundle, summary). What runs once per step hooks in at `step_end`, in a fixed order; what runs
once per job hooks in at `finish`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from trainforge_api.context import ENV_ATTEMPT, JobContext
from trainforge_api.trainingjob import ArtifactSummary
from trainforge_runtime import bundle, model_ops, warmstart
from trainforge_runtime.config import DEFAULT_RUN_DIR, ENV_RUN_DIR, env_int, load_context
from trainforge_runtime.export import ModelExport, export_state_dict, full_state_dict
from trainforge_runtime.faults import maybe_inject_fault
from trainforge_runtime.findings import HealthWatch
from trainforge_runtime.layouts import LossFn, Topology, parallelize
from trainforge_runtime.process_group import GangMember
from trainforge_runtime.profiling import Profiler, profiler_for
from trainforge_runtime.recovery import Recovery
from trainforge_runtime.steps import GpuSampler, StepTimer
from trainforge_runtime.summary import summarize, write_summary
from trainforge_runtime.telemetry import Telemetry
from trainforge_runtime.tracking import MlflowTracker

T = TypeVar("T")
log = logging.getLogger(__name__)
# How often this pod's agent restarted its processes in place (torch elastic sets it); a fault
# spec's `attempt` counts these too, so an in-place restart runs clean like a new gang does.
ENV_LOCAL_RESTARTS = "TORCHELASTIC_RESTART_COUNT"
StepHook = Callable[[int, dict[str, float]], None]


def seed_everything(seed: int) -> None:
    """Same seed on every rank so all replicas build identical initial weights."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RuntimeContext:
    """Per-process runtime state; create it with `trainforge_runtime.init()`."""

    def __init__(self, job: JobContext, *, start_metrics: bool = True) -> None:
        self.job = job
        self.hyperparameters: dict[str, Any] = dict(job.hyperparameters)
        self.attempt = env_int(ENV_ATTEMPT, 0)
        self._member = member = GangMember.from_env(job.parallelism.backend)
        self.rank = member.rank
        self.world_size = member.world_size
        self.local_rank = member.local_rank
        self.is_main = member.is_main
        self.backend = member.backend
        self.device = member.device
        self.run_dir = Path(os.environ.get(ENV_RUN_DIR) or Path(DEFAULT_RUN_DIR) / job.job.name)
        self.artifacts_dir = self.run_dir / "artifacts"
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self._telemetry = Telemetry(job, self.rank)
        self.metrics = self._telemetry.metrics
        self.progress = self._telemetry.progress
        self.history = self._telemetry.history
        self._recovery = Recovery(job, member, self.metrics.checkpoint_seconds)  # SIGTERM first
        self.final_metrics: dict[str, float] = {}
        self.warm_started: warmstart.WarmStart | None = None
        self.step = 0
        self._started = time.monotonic()
        self._timer = StepTimer()
        self._gpu = GpuSampler(self.device, self.metrics)
        self._hooks: list[StepHook] = []
        self.topology: Topology = member.join(job.parallelism)  # blocks until every rank is in
        seed_everything(int(self.hyperparameters.get("seed", 0)))
        if start_metrics and job.metrics.enabled:
            self._telemetry.serve(self.local_rank)
        self._health = HealthWatch(job, self.rank, self.metrics, self.progress)
        self.findings = self._health.findings
        self._exit_stack = contextlib.ExitStack()
        profiler = profiler_for(job.profiling, self.rank, self.artifacts_dir / "profile")
        self.profiler: Profiler = self._exit_stack.enter_context(profiler)
        self._telemetry.start_tracking()

    # --- state that changes while training ----------------------------------------------------
    @property
    def dp_rank(self) -> int:
        return self.topology.dp_rank

    @property
    def dp_size(self) -> int:
        return self.topology.dp_size

    @property
    def tracker(self) -> MlflowTracker | None:
        return self._telemetry.tracker

    @property
    def metrics_port(self) -> int | None:
        return self._telemetry.port

    @property
    def stop_requested(self) -> bool:
        return self._recovery.stop_requested

    # --- model ---------------------------------------------------------------------------------
    def warm_start(self, model: nn.Module) -> nn.Module:
        """Start from the model at `TRAINFORGE_WARM_START_URI` (a TrainingSchedule's warmStart):
        call on the plain model, before `parallelize` and `resume` (a checkpoint of this run
        wins). A no-op without it. The final metric `warm_started` is 1 when the weights were
        loaded and 0 when they could not be (the log says why)."""
        uri = warmstart.warm_start_uri()
        if uri is None:
            return model
        result = warmstart.load_into(model, uri, self.job.artifacts.s3_endpoint)
        self.warm_started = result
        self.final_metrics["warm_started"] = 1.0 if result.loaded else 0.0
        if result.loaded:
            log.info("warm start: loaded the model from %s", uri)
        else:
            log.warning("warm start skipped, training from scratch: %s", result.reason)
        return model

    def parallelize(self, model: nn.Module, loss_fn: LossFn | None = None) -> nn.Module:
        """Apply the job's layout (see layouts.py); `loss_fn` is used by the pipeline schedule."""
        return parallelize(model, self.topology, self.hyperparameters, loss_fn)

    def forward_backward(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
    ) -> torch.Tensor | None:
        """Forward and backward in any layout; this rank's loss (None off the last stage)."""
        return model_ops.forward_backward(model, inputs, targets, loss_fn)

    def eval_loss(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
    ) -> float:
        """Forward-only loss of this rank's slice of a batch, averaged like `mean_loss`.

        Collective in every layout: each rank passes its data-parallel slice (pipeline stages
        run the schedule forward only; only the last stages hold a loss)."""
        return model_ops.eval_loss(self.topology, model, inputs, targets, loss_fn)

    def mean_loss(self, loss: torch.Tensor | None) -> float:
        """The global-batch loss on every rank (averaged over replicas; pipeline: last stages)."""
        return model_ops.mean_loss(self.topology, loss)

    def grad_norm(self, model: nn.Module) -> float:
        """Global L2 norm of the gradients, correct for sharded (DTensor) and staged params."""
        return model_ops.grad_norm(self.topology, model)

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Unsharded CPU copy of the weights on every rank (collective for sharded layouts)."""
        return full_state_dict(model)

    def export_state_dict(self, model: nn.Module) -> ModelExport:
        """Full, unsharded CPU weights for the bundle; complete on rank 0 only (collective)."""
        return export_state_dict(model, self.topology)

    # --- checkpoints ---------------------------------------------------------------------------
    def resume(self, state: dict[str, Any]) -> int:
        """Register what to checkpoint and restore the newest checkpoint into it.

        `state` maps names to modules, optimizers and plain values (see checkpoint.py). Returns
        the step to continue after (0 for a fresh start). A no-op without `checkpoint.uri`.
        """
        step = self._recovery.resume(state)
        if step is None:
            return 0
        self.step = step
        if self.progress is not None:
            self.progress.resumed_from_step = step
        return step

    # --- per step ------------------------------------------------------------------------------
    def timed(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield from `iterable`, timing each `next()` as data wait (the rest is compute)."""
        return self._timer.timed(iterable, self.profiler)

    def set_total_steps(self, total: int) -> None:
        self._telemetry.set_total_steps(total)

    def set_phase(self, phase: str) -> None:
        self._telemetry.set_phase(phase)

    def log_metrics(self, step: int, **metrics: float) -> None:
        """Publish metrics (Prometheus gauges with agreed names, all keys on /progress)."""
        clean = self._telemetry.publish(step, metrics)
        if "val_loss" in clean:  # validation runs outside step_end; overfitting needs to see it
            self._health.observe(step, {"val_loss": clean["val_loss"]})

    def add_step_hook(self, hook: StepHook) -> None:
        """Run `hook(step, metrics)` at every step end."""
        self._hooks.append(hook)

    def step_end(self, step: int, samples: int = 0, tokens: int = 0, **metrics: float) -> None:
        """Close one optimizer step: timings, throughput, metrics, health, checkpoint, profiler,
        hooks, fault injection and SIGTERM (checkpoint, then exit 143 on every rank at the same
        step), in that order."""
        self.step = step
        timing = self._timer.lap()
        for key, rate in timing.rates(samples, tokens, self.world_size).items():
            metrics.setdefault(key, rate)
        self._gpu.sample(metrics)
        self._telemetry.publish_step(step, timing, metrics)
        if self._health.active:
            self._health.observe(step, {**metrics, **timing.as_metrics()})
        self._recovery.save_if_due(step)
        self.profiler.step()
        for hook in self._hooks:
            hook(step, metrics)
        maybe_inject_fault(self.rank, step, self.attempt + env_int(ENV_LOCAL_RESTARTS, 0))
        self._recovery.stop_if_requested(step)

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
        self._telemetry.publish(self.step, self.final_metrics)
        self._exit_stack.close()  # flush the profiler before the report reads its summary
        export = self.export_state_dict(model) if model is not None else None
        artifacts = None
        if self.is_main:
            card = bundle.ModelCard(model_config, labels, tokenizer, dataset_fingerprint)
            artifacts = self._publish_outputs(export, card, confusion_matrix, class_names)
        summary = self.write_summary("Succeeded", artifacts=artifacts)
        self.set_phase("done")
        self.close()
        return summary

    def _publish_outputs(
        self,
        export: ModelExport | None,
        card: bundle.ModelCard,
        confusion_matrix: Any,
        class_names: list[str] | None,
    ) -> ArtifactSummary | None:
        """Rank 0: bundle, report, upload and MLflow, in the order each needs the previous. The
        report (matplotlib: a few CPU-seconds) is skipped when nothing keeps it: no
        `artifacts.uri` and no MLflow tracking."""
        duration = round(time.monotonic() - self._started, 3)
        run = bundle.RunFacts(self.job, self.rank, self.world_size, self.attempt, duration)
        out = self.artifacts_dir
        bundle.write_bundle(out, run, export, card, self.final_metrics, self.hyperparameters)
        if self.job.artifacts.uri or self._telemetry.tracker is not None:
            report_facts = (self.history, self.findings, self.final_metrics)
            bundle.write_report(out, run, *report_facts, confusion_matrix, class_names)
        if self.job.artifacts.uri:
            self.set_phase("uploading")
        artifacts = bundle.upload(out, self.job)
        self._telemetry.finish_tracking(out)
        return artifacts

    def write_summary(
        self,
        exit_reason: str,
        artifacts: ArtifactSummary | None = None,
        message: str = "",
    ) -> dict[str, Any]:
        """The per-rank summary the launcher turns into the termination message."""
        summary = summarize(
            exit_reason,
            self.step,
            self.final_metrics,
            self.findings,
            self.progress,
            artifacts,
            message,
        )
        return write_summary(self.run_dir, self.rank, summary)

    def close(self) -> None:
        """Stop the metrics server and leave the process group (idempotent)."""
        self._exit_stack.close()
        self._telemetry.stop_serving()
        self._member.leave()


_CURRENT: RuntimeContext | None = None


def current() -> RuntimeContext | None:
    """The context `init()` made in this process, if any (the exit path summarises through it)."""
    return _CURRENT


def init(context: JobContext | None = None, *, start_metrics: bool = True) -> RuntimeContext:
    """Read the job context and env, join the process group, seed, start metrics."""
    global _CURRENT
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s rank=%(process)d %(levelname)s %(message)s"
    )
    job = context or load_context()
    _CURRENT = RuntimeContext(job, start_metrics=start_metrics)
    return _CURRENT

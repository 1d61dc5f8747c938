"""Success, and what rank 0 reported when it exited.

A job succeeds when every worker pod of one attempt exited 0. Rank 0's termination message
(trainforge_api.termination) carries the final metrics, the artifact summary, the findings and
the last step; it is read into status on success and on a permanent failure, because the message
outlives the pods (cleanPodPolicy) and the last progress poll.
"""

from __future__ import annotations

import contextlib
from typing import Any

from trainforge_api import termination
from trainforge_api.progress import percent_done
from trainforge_api.trainingjob import ArtifactSummary, Finding, Progress, TrainingJobSpec
from trainforge_operator import pods
from trainforge_operator.policies import ttl
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import iso

Obj = dict[str, Any]


def succeed(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> None:
    """Every worker of the attempt exited 0: Succeeded, with rank 0's results."""
    absorb_summary(p, current)
    mark_finished(p)
    message = f"all {len(current)} workers completed with exit code 0"
    p.set_phase("Succeeded", message)
    p.status.completion_time = iso(p.now)
    p.condition("Succeeded", True, "AllWorkersSucceeded", message)
    p.condition("PodsReady", False, "Completed", message)
    ttl.cleanup(p, spec.run_policy.clean_pod_policy)
    p.event("Normal", "Succeeded", message)
    ttl.schedule_deletion(p)


def mark_finished(p: Pass) -> None:
    """A succeeded job is 100% done; one that stopped before totalSteps (early stopping) says
    so in the phase, instead of reading `percent: 40` forever."""
    progress = p.status.progress
    if progress is None or progress.step is None:
        return
    total = progress.total_steps
    if total and progress.step < total:
        progress.phase = f"early-stopped at step {progress.step} of {total}"
    else:
        progress.phase = "done"
    if total:
        progress.percent = 100.0


def termination_summary(pod: Obj) -> Obj | None:
    """Rank 0's JSON termination message (final metrics, artifacts, findings), if parseable."""
    term = pods.terminated_state(pod)
    if not term or not term.get("message"):
        return None
    return termination.decode(term["message"]) or None


def absorb_summary(p: Pass, current: list[Obj]) -> None:
    """Final metrics, artifacts, findings and progress from rank 0's termination message."""
    rank0 = pods.rank0(current)
    summary = (termination_summary(rank0) if rank0 is not None else None) or {}
    metrics = summary.get("metrics")
    if isinstance(metrics, dict):
        p.status.results = metrics
    _absorb_artifacts(p, summary)
    _absorb_final_progress(p, summary)
    _absorb_findings(p, summary)


def _absorb_artifacts(p: Pass, summary: Obj) -> None:
    arts = summary.get("artifacts")
    if isinstance(arts, dict):
        known = {k: arts[k] for k in ("uri", "files", "bytes") if k in arts}
        with contextlib.suppress(ValueError):
            p.status.artifacts = ArtifactSummary.model_validate(known)


def _absorb_findings(p: Pass, summary: Obj) -> None:
    findings = summary.get("findings")
    if isinstance(findings, list) and findings:
        with contextlib.suppress(ValueError):
            p.status.findings = [
                Finding.model_validate(
                    {k: f[k] for k in ("rule", "step", "message", "action") if k in f}
                )
                for f in findings
                if isinstance(f, dict)
            ]


def _absorb_final_progress(p: Pass, summary: Obj) -> None:
    """The last step (and the checkpoint step it resumed from) as rank 0 reported them on
    exit: the final word, even when the run ended between two progress polls."""
    step = summary.get("step")
    if not isinstance(step, int):
        return
    progress = p.status.progress or Progress()
    progress.step = step
    total = summary.get("totalSteps")
    if isinstance(total, int) and total > 0:
        progress.total_steps = total
        progress.percent = percent_done(step, total)
    resumed = summary.get("resumedFromStep")
    if isinstance(resumed, int):
        progress.resumed_from_step = resumed
    progress.eta_seconds, progress.eta = None, None
    p.status.progress = progress

"""Resizing an elastic gang on purpose: spec.parallelism.nodes is the desired size.

On an elastic job (minNodes < maxNodes) nodes may change while the job runs (the CRD's
transition rule allows nothing else; `kubectl scale` and a HorizontalPodAutoscaler use the scale
subresource). Growing needs nothing here: `gang.create_missing` creates the new indexes, and
each joins the running rendezvous when its pod runs (the agents restart their processes to
admit it, which `recovery.track_membership` counts as an elastic grow). Shrinking deletes the
current attempt's workers with index >= nodes (never node 0, since nodes >= minNodes >= 1); the
survivors re-rendezvous and resume from the newest checkpoint. A change is named by a
ScaledUp or ScaledDown Event; the phase stays what it is.

The standalone launcher has no elastic agent to admit or drop a node, so a resize of such a job
recreates the gang at the new size (not counted as a failure restart).
"""

from __future__ import annotations

from typing import Any

from trainforge_api.launchers import resolve_launcher
from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_operator import pods
from trainforge_operator.names import job_pods_selector
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import iso

Obj = dict[str, Any]


def resize(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> list[Obj] | None:
    """Delete the workers beyond the desired size and name a change of it; returns the
    current attempt's pods that stay, or None when the gang is recreated at the new size."""
    nodes = spec.parallelism.nodes
    p.status.selector = job_pods_selector(p.job.name, p.job.uid)
    before = p.status.desired_nodes
    p.status.desired_nodes = nodes
    changed = before is not None and before != nodes
    if changed and current and resolve_launcher(spec, p.config.default_image) == "standalone":
        _recreate_at(p, before or nodes, nodes)
        return None
    beyond = [pod for pod in current if (pods.index(pod) or 0) >= nodes]
    p.delete(beyond)
    if any(pods.phase(pod) == "Running" for pod in beyond):
        p.plan.restart_kind = "elastic-shrink"
    if changed:
        _name_change(p, spec, before or nodes, beyond)
    return [pod for pod in current if pod not in beyond]


def _name_change(p: Pass, spec: TrainingJobSpec, before: int, beyond: list[Obj]) -> None:
    par = spec.parallelism
    bounds = f"minNodes {par.min_size}, maxNodes {par.max_size}"
    if par.nodes > before:
        then = "the new workers join the running gang as they start"
        message = f"desired size {before} -> {par.nodes} nodes ({bounds}): {then}"
        p.event("Normal", "ScaledUp", message)
        return
    names = ", ".join(sorted(pods.name(pod) for pod in beyond)) or "no running worker"
    then = "the others re-rendezvous and resume from the newest checkpoint"
    p.event(
        "Normal",
        "ScaledDown",
        f"desired size {before} -> {par.nodes} nodes ({bounds}): removing {names}; {then}",
    )


def _recreate_at(p: Pass, before: int, nodes: int) -> None:
    """The standalone launcher's ranks form one fixed world: start the next attempt at the new
    size now (no backoff, not counted in restarts)."""
    verb = "ScaledUp" if nodes > before else "ScaledDown"
    message = (
        f"desired size {before} -> {nodes} nodes: the standalone launcher cannot resize a "
        "running world, so the gang is recreated at the new size (resuming from the newest "
        "checkpoint your script wrote)"
    )
    p.status.restart_after = iso(p.now)
    p.status.running_time = None
    p.set_phase("Restarting", message)
    p.condition("Restarting", True, "Resized", message)
    p.condition("PodsReady", False, "Resized", message)
    p.delete(p.obs.pods)
    p.plan.restart_kind = "gang"
    p.event("Normal", verb, message)
    p.requeue(1.0)

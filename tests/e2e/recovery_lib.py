"""Kill one worker of a running digits job on kind and time its recovery: shared by
tests/e2e/test_recovery_e2e.py and bench/recovery_kind.py.

Recovery time is from the kill (the worker pod force-deleted, as a lost node or an OOM-kill
would leave it) to training steps advancing again: rank 0's progress, as the operator reports it
in status, shows that the gang resumed from a checkpoint and has gone past the step it resumed
from. The operator polls rank 0 every few seconds (progressIntervalSeconds), which bounds the
resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tf_kind import KindCluster, load_example

BUCKET = "trainforge"
KILL_AT_STEP = 15


def recovery_job(name: str, recovery: str, epochs: int = 5, **parallelism: Any) -> dict[str, Any]:
    """examples/digits-ddp.yaml, renamed, short, checkpointing every 10 steps, with `recovery`."""
    job = load_example("digits-ddp.yaml")
    job["metadata"]["name"] = name
    spec = job["spec"]
    spec["hyperparameters"].update(epochs=epochs, patience=100)
    spec["parallelism"].update(parallelism)
    spec["resources"]["cpu"] = "500m"
    spec["checkpoint"].update(uri=f"s3://{BUCKET}/checkpoints/{name}/", everySteps=10)
    spec["runPolicy"] = {"maxRestarts": 3, "restartBackoffSeconds": 1, "recovery": recovery}
    return job


def advancing_after_resume(status: dict[str, Any]) -> bool:
    progress = status.get("progress") or {}
    resumed, step = progress.get("resumedFromStep"), progress.get("step")
    return resumed is not None and step is not None and step > resumed


@dataclass(frozen=True)
class Recovery:
    name: str
    recovery: str
    killed_at_step: int
    resumed_from_step: int
    seconds: float  # kill -> steps advancing again


def kill_worker_and_time(
    cluster: KindCluster, job: dict[str, Any], pod_index: int = 1
) -> tuple[Recovery, dict[str, Any]]:
    """Run `job`, force-delete worker `pod_index` once rank 0 passed KILL_AT_STEP, time until
    the steps advance again, then wait for the end; returns the timing and the final status."""
    name = job["metadata"]["name"]
    cluster.recreate_job(job)
    before = cluster.wait_job(
        name,
        lambda s: (
            s.get("phase") == "Running"
            and ((s.get("progress") or {}).get("step") or 0) >= KILL_AT_STEP
        ),
        timeout=600,
        what=f"reach step {KILL_AT_STEP}",
    )
    killed = time.monotonic()
    cluster.kubectl(
        "delete", "pod", f"{name}-worker-{pod_index}", "--grace-period=0", "--force",
        "--wait=false", check=True,
    )  # fmt: skip
    status = cluster.wait_job(
        name, advancing_after_resume, timeout=600, what="advance after resuming"
    )
    seconds = time.monotonic() - killed
    progress = status["progress"]
    timing = Recovery(
        name,
        job["spec"]["runPolicy"]["recovery"],
        int((before.get("progress") or {}).get("step") or 0),
        int(progress["resumedFromStep"]),
        seconds,
    )
    return timing, cluster.wait_job(name)

# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""Crash windows on the controller against a real API server: a pass that acts and is cut
before (or right after) its status write, then a fresh operator's passes, end where an
uninterrupted run does.

The crash is injected at the API adapter: `CrashingApi` raises `Crash` instead of sending the
status write ("after-create"), the first pod delete ("after-write") or the second pod delete
("mid-delete"). Every pass runs on a fresh `Controller` (no cache, as after a restart). Worker
pods are kwok's: they run until a test annotates the exit code. The same table on the pure
decide() is tests/unit/test_crash_windows.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from operator_fixture import (  # noqa: F401  (fixtures)
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    kube_client,
    operator_config_for,
    trainforge_crd,
    wait_for,
)

from trainforge_operator.config import OperatorConfig
from trainforge_operator.controller import Controller, _Loop
from trainforge_operator.kube import KubeApi, Obj
from trainforge_operator.progress import AnnotationProgressSource

EXIT = "kwok.trainforge.io/exit-code"
RUN_SECONDS = "kwok.trainforge.io/run-seconds"
ATTEMPT = "trainforge.io/attempt"
INDEX = "trainforge.io/replica-index"
NAME = "crash"


class Crash(Exception):
    """The operator died here."""


class CrashingApi(KubeApi):
    """The real API adapter, cut at one point; counts every pod it really created."""

    def __init__(self, creations: Counter[tuple[str, str]], crash: str = ""):
        super().__init__()  # credentials from $KUBECONFIG, which the tier fixture set
        self.creations = creations
        self.crash = crash
        self.crashed = False
        self.deletes = 0

    def _die(self) -> None:
        self.crashed = True
        raise Crash(self.crash)

    async def create(self, obj: Obj) -> bool:
        new = await super().create(obj)
        if new and obj["kind"] == "Pod":
            labels = obj["metadata"]["labels"]
            self.creations[(labels[ATTEMPT], labels[INDEX])] += 1
        return new

    async def replace_status(self, body: Obj, status: Obj) -> Obj | None:
        if self.crash == "after-create":
            self._die()
        return await super().replace_status(body, status)

    async def delete_pod(self, namespace: str, name: str, uid: str = "") -> None:
        if self.crash == "after-write" or (self.crash == "mid-delete" and self.deletes >= 1):
            self._die()
        self.deletes += 1
        await super().delete_pod(namespace, name, uid)


@dataclass
class Run:
    """One job driven pass by pass by fresh controllers."""

    cluster: Cluster
    config: OperatorConfig
    api_client: Any
    creations: Counter[tuple[str, str]]

    def one_pass(self, crash: str = "") -> CrashingApi:
        api = CrashingApi(self.creations, crash)
        controller = Controller(self.config, api, AnnotationProgressSource())

        async def run() -> None:
            try:
                await controller.reconcile((self.cluster.ns, NAME), _Loop(wake=asyncio.Event()))
                await asyncio.sleep(0)  # let the Event posts start
            finally:
                await controller.stop()
                await api.close()

        with contextlib.suppress(Crash):
            asyncio.run(run())
        return api

    def until(self, what: str, probe: Any, timeout: float = 40) -> Any:
        """Fresh passes until `probe(status, pods)` holds."""

        def step() -> Any:
            self.one_pass()
            return probe(self.cluster.status(NAME), self.pods())

        return wait_for(what, step, timeout, interval=0.5)

    def pods(self) -> list[Any]:
        return [p for p in self.cluster.pods(NAME) if p.metadata.deletion_timestamp is None]

    def wait_pods(self, what: str, phase: str, names: list[str]) -> None:
        """Wait (no passes: the operator is 'down') until the named pods reach `phase`."""

        def probe() -> bool:
            seen = {p.metadata.name: p.status.phase for p in self.pods()}
            return all(seen.get(n) == phase for n in names)

        wait_for(what, probe)

    def annotate(self, index: int, code: int) -> None:
        self.cluster.annotate_pod(f"{NAME}-worker-{index}", {EXIT: str(code), RUN_SECONDS: "0"})

    def set_phase(self, phase: str) -> None:
        """Write the stored phase as a pass that lost the race with the kubelet left it."""
        body = self.cluster.job(NAME)
        assert body is not None
        body["status"]["phase"] = phase
        self.cluster.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, self.cluster.ns, PLURAL, NAME, body
        )


def workers() -> list[str]:
    return [f"{NAME}-worker-0", f"{NAME}-worker-1"]


def running(status: Obj, pods: list[Any], attempt: int = 0) -> bool:
    mine = [p for p in pods if p.metadata.labels[ATTEMPT] == str(attempt)]
    return (
        status.get("phase") == "Running"
        and len(mine) == 2
        and all(p.status.phase == "Running" for p in mine)
    )


# --- the windows: bring the job to the decisive moment, then say what must come of it ----------


def succeed(run: Run) -> None:
    run.annotate(0, 0)
    run.annotate(1, 0)
    run.wait_pods("both workers exited 0", "Succeeded", workers())


def succeed_while_starting(run: Run) -> None:
    succeed(run)
    run.set_phase("Starting")


def fail_retryable(run: Run) -> None:
    run.annotate(0, 137)
    run.wait_pods("worker 0 killed", "Failed", workers()[:1])


def fail_permanent(run: Run) -> None:
    run.annotate(0, 1)
    run.wait_pods("worker 0 exited 1", "Failed", workers()[:1])


def restart_due(run: Run) -> None:
    """The gang failed and its pods are gone; the next pass creates attempt 1."""
    fail_retryable(run)
    run.until("Restarting", lambda s, _: s.get("phase") == "Restarting")
    wait_for("the old gang deleted", lambda: not run.cluster.pods(NAME))
    after = run.cluster.status(NAME)["restartAfter"]
    wait_for(
        "the backoff to elapse", lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > after
    )


def finished(phase: str) -> Any:
    return lambda status, pods: status.get("phase") == phase and not pods


def next_attempt(status: Obj, pods: list[Any]) -> bool:
    return status.get("attempt") == 1 and running(status, pods, attempt=1)


ALL = {"cleanPodPolicy": "All"}
# id: (runPolicy, lead-up, crash points, the end, (phase, attempt, restarts, lastFailure code))
WINDOWS = [
    ("success, cleanPodPolicy All", ALL, succeed, ["after-create", "mid-delete"],
     finished("Succeeded"), ("Succeeded", 0, 0, None)),
    ("success while the status says Starting", ALL, succeed_while_starting, ["after-write"],
     finished("Succeeded"), ("Succeeded", 0, 0, None)),
    ("retryable failure: gang restart", {}, fail_retryable, ["after-write", "mid-delete"],
     next_attempt, ("Running", 1, 1, 137)),
    ("creation of attempt N+1", {}, restart_due, ["after-create"],
     next_attempt, ("Running", 1, 1, 137)),
    ("permanent failure, cleanPodPolicy All", ALL, fail_permanent, ["after-write"],
     finished("Failed"), ("Failed", 0, 0, 1)),
]  # fmt: skip
CASES = [
    pytest.param(policy, lead_up, crash, end, want, id=f"{name} / {crash}")
    for name, policy, lead_up, points, end, want in WINDOWS
    for crash in points
]


@pytest.mark.parametrize(("policy", "lead_up", "crash", "end", "want"), CASES)
def test_a_pass_cut_short_ends_where_an_uninterrupted_one_does(
    kube_client: Any,
    trainforge_crd: None,
    namespace: str,
    policy: Obj,
    lead_up: Any,
    crash: str,
    end: Any,
    want: tuple[str, int, int, int | None],
) -> None:
    cluster = Cluster(kube_client, namespace)
    run = Run(cluster, operator_config_for(namespace), kube_client, Counter())
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob", "metadata": {"name": NAME},
        "spec": {"command": ["python", "-m", "train"], "parallelism": {"nodes": 2},
                 "runPolicy": {"restartBackoffSeconds": 1, "maxRestartBackoffSeconds": 2,
                               **policy}},
    })  # fmt: skip
    run.until("the gang running", running)
    lead_up(run)

    cut = run.one_pass(crash)
    assert cut.crashed, f"the pass never reached {crash}"

    run.until("the end an uninterrupted run reaches", end)
    status = cluster.status(NAME)
    phase, attempt, restarts, code = want
    assert status["phase"] == phase
    assert status.get("attempt", 0) == attempt
    assert status.get("restarts", 0) == restarts
    if code is None:
        assert "lastFailure" not in status
    else:
        assert status["lastFailure"]["exitCode"] == code
        assert status["lastFailure"]["pod"] == f"{NAME}-worker-0"
    for _ in range(3):  # more passes change nothing
        run.one_pass()
    assert cluster.status(NAME)["phase"] == phase
    assert max(run.creations.values()) == 1, f"an attempt's pod was created twice: {run.creations}"
    assert sorted(run.creations) == sorted(
        (str(a), str(i)) for a in range(attempt + 1) for i in range(2)
    )


class LaggingApi(CrashingApi):
    """The real adapter, but its pods are an older view: an informer that lags, or a new
    operator's informer whose first list is older than the LIST the pass before it made."""

    def __init__(self, creations: Counter[tuple[str, str]], view: list[Obj]):
        super().__init__(creations)
        self.view = view

    async def list_pods(self, namespace: str, job: str, uid: str) -> list[Obj]:
        return self.view


def test_a_delete_decided_on_an_older_view_spares_the_next_attempt(
    kube_client: Any, trainforge_crd: None, namespace: str
) -> None:
    """The chaos suite's duplicate (chaos-013/1/0): attempt 1's pods were created and recorded;
    the next pass still saw attempt 0's pods, so it deleted them as stale, by name, and the
    names were attempt 1's by then. A delete must reach only the pod it was decided on."""
    cluster = Cluster(kube_client, namespace)
    run = Run(cluster, operator_config_for(namespace), kube_client, Counter())
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob", "metadata": {"name": NAME},
        "spec": {"command": ["python", "-m", "train"], "parallelism": {"nodes": 2},
                 "runPolicy": {"restartBackoffSeconds": 1, "maxRestartBackoffSeconds": 2}},
    })  # fmt: skip
    run.until("the gang running", running)
    raw: Any = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"trainforge.io/job-name={NAME}", _preload_content=False
    )
    attempt0 = json.loads(raw.data)["items"]
    restart_due(run)
    run.one_pass()  # creates attempt 1 and records it
    status = cluster.status(NAME)
    assert (status["attempt"], status["phase"]) == (1, "Pending"), status
    new = {p.metadata.name: p.metadata.uid for p in run.pods()}
    assert sorted(new) == workers()

    lagging = LaggingApi(run.creations, attempt0)
    controller = Controller(run.config, lagging, AnnotationProgressSource())

    async def lagging_pass() -> None:
        try:
            await controller.reconcile((namespace, NAME), _Loop(wake=asyncio.Event()))
        finally:
            await controller.stop()

    asyncio.run(lagging_pass())
    assert lagging.deletes == 2, "the older view's attempt-0 pods were not deleted as stale"
    assert {p.metadata.name: p.metadata.uid for p in run.pods()} == new, "attempt 1 was hit"
    run.until("attempt 1 running", next_attempt)
    assert max(run.creations.values()) == 1, f"an attempt's pod was created twice: {run.creations}"


def test_a_pass_on_a_lagging_view_counts_an_in_place_recovery_once(
    kube_client: Any, trainforge_crd: None, namespace: str
) -> None:
    """Expectations: the pass right after an in-place recovery deleted the failed worker can
    still see it as it was (an informer that has not seen the delete yet). It must not take it
    for a new failure: one failure, one restart (it was counted twice in the integration tier
    under load)."""
    cluster = Cluster(kube_client, namespace)
    run = Run(cluster, operator_config_for(namespace), kube_client, Counter())
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob", "metadata": {"name": NAME},
        "spec": {"command": ["python", "-m", "train"], "parallelism": {"nodes": 2},
                 "runPolicy": {"recovery": "InPlace"}},
    })  # fmt: skip
    run.until("the gang running", running)
    run.annotate(1, 137)
    run.wait_pods("worker 1 killed", "Failed", workers()[1:])
    raw: Any = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"trainforge.io/job-name={NAME}", _preload_content=False
    )
    stale = json.loads(raw.data)["items"]  # worker 1 Failed, not deleted: the view that lags
    lagging = LaggingApi(run.creations, stale)
    controller = Controller(run.config, lagging, AnnotationProgressSource())
    loop = _Loop(wake=asyncio.Event())

    async def two_passes() -> None:
        try:
            await controller.reconcile((namespace, NAME), loop)  # counts, deletes worker 1
            await controller.reconcile((namespace, NAME), loop)  # the same view again
        finally:
            await controller.stop()
            await lagging.close()

    asyncio.run(two_passes())
    assert lagging.deletes == 1, "worker 1 was deleted again"
    status = cluster.status(NAME)
    assert (status["restarts"], status["inPlaceRestarts"]) == (1, 1), status
    assert status["lastFailure"]["pod"] == f"{NAME}-worker-1"


def new_job(cluster: Cluster) -> None:
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob", "metadata": {"name": NAME},
        "spec": {"command": ["python", "-m", "train"], "parallelism": {"nodes": 2}},
    })  # fmt: skip


GANG_0 = [("0", "0"), ("0", "1")]


def test_a_new_jobs_first_pass_leaves_its_status_to_the_next_pass(
    kube_client: Any, trainforge_crd: None, namespace: str
) -> None:
    """The first pass creates the gang and writes no status (controller._defers_status); the
    same operator's next pass writes it, creating nothing again and not repeating the Created
    Event or counting the job twice."""
    cluster = Cluster(kube_client, namespace)
    run = Run(cluster, operator_config_for(namespace), kube_client, Counter())
    new_job(cluster)
    api = CrashingApi(run.creations)
    controller = Controller(run.config, api, AnnotationProgressSource())
    loop = _Loop(wake=asyncio.Event())
    statuses: list[Obj] = []

    async def two_passes() -> None:
        try:
            await controller.reconcile((namespace, NAME), loop)
            statuses.append(cluster.status(NAME))
            await controller.reconcile((namespace, NAME), loop)
            statuses.append(cluster.status(NAME))
            await asyncio.sleep(1)  # the Events are posted beside the passes
        finally:
            await controller.stop()
            await api.close()

    asyncio.run(two_passes())
    assert statuses[0] == {}, "the first pass wrote a status"
    assert statuses[1]["phase"] in ("Pending", "Starting", "Running"), statuses[1]
    assert statuses[1]["conditions"][0]["type"] == "Created", statuses[1]
    assert sorted(run.creations) == GANG_0
    assert max(run.creations.values()) == 1
    reasons = [reason for reason, _ in cluster.events(NAME)]
    assert reasons.count("Created") == 1, reasons


def test_an_operator_that_dies_after_a_new_jobs_first_pass_loses_nothing(
    kube_client: Any, trainforge_crd: None, namespace: str
) -> None:
    """A crash after the first pass (the gang created, no status written): fresh operators find
    the pods, create none twice and bring the job to Running at attempt 0."""
    cluster = Cluster(kube_client, namespace)
    run = Run(cluster, operator_config_for(namespace), kube_client, Counter())
    new_job(cluster)
    run.one_pass()
    assert cluster.status(NAME) == {}
    assert sorted(run.creations) == GANG_0
    run.until("the gang running", running)
    status = cluster.status(NAME)
    assert (status.get("attempt", 0), status.get("restarts", 0)) == (0, 0), status
    assert max(run.creations.values()) == 1, f"an attempt's pod was created twice: {run.creations}"

"""The trainforge operator, in-process, against the control-plane tier.

The operator runs the real kopf machinery (`kopf.operator()` with the production handlers and
settings) in a background thread with its own event loop, so tests can stop it mid-job and start a
fresh one (the "operator restarted" scenario) in milliseconds, and read its in-memory state. The
only test double is the progress source: kwok pods have no reachable IPs, so rank 0's progress is
read from the `trainforge.io/progress` pod annotation, which the operator also accepts in
production (see docs/api-reference.md).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config import kube_config as k8s_kube_config
from tf_controlplane import ControlPlane

from trainforge_operator.config import NodePool, OperatorConfig
from trainforge_operator.controller import Controller
from trainforge_operator.kube import KubeApi
from trainforge_operator.main import run_operator
from trainforge_operator.progress import AnnotationProgressSource
from trainforge_operator.schedules.controller import ScheduleController, utcnow

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "trainingjobs.trainforge.io.yaml"
SCHEDULE_CRD_FILE = REPO / "crds" / "trainingschedules.trainforge.io.yaml"
GROUP, VERSION, PLURAL = "trainforge.io", "v1alpha1", "trainingjobs"
T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 30, interval: float = 0.3
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def operator_config_for(namespace: str) -> OperatorConfig:
    """Pools matching the tier's kwok nodes; fast polling for short tests."""
    return OperatorConfig(
        default_image="trainforge/worker:0.1.0",
        namespaces=[namespace],
        default_node_pool="cpu",
        node_pools={
            "gpu": NodePool(
                node_selector={"trainforge.io/pool": "gpu"},
                tolerations=[
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ],
            ),
            "cpu": NodePool(node_selector={"trainforge.io/pool": "cpu"}),
        },
        resync_seconds=2.0,
        progress_interval_seconds=1.0,
        progress_source="annotation",
    )


def use_kubeconfig(path: str) -> Any:
    """Point kopf's login at `path` and return an API client for it.

    kopf logs in through the client library's default kubeconfig, which the library reads from
    $KUBECONFIG once, at import (long before the tier exists), so both are set here.
    """
    os.environ["KUBECONFIG"] = path
    k8s_kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path
    return k8s_config.new_client_from_config(config_file=path)


@dataclass
class OperatorHandle:
    """Start/stop the in-process operator; `start()` again simulates an operator restart."""

    config: OperatorConfig
    api_client: Any
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _errors: list[BaseException] = field(default_factory=list)
    controller: Controller | None = None
    # The TrainingSchedule clock (tests/integration/test_schedules.py runs it faster).
    schedule_clock: Callable[[], Any] = utcnow
    schedule_speed: float = 1.0
    schedules: ScheduleController | None = None

    def start(self, timeout: float = 30) -> None:
        self._stop = threading.Event()
        ready = threading.Event()
        self.controller = Controller(
            self.config,
            KubeApi(),
            AnnotationProgressSource(),  # logs in from $KUBECONFIG
        )
        self.schedules = ScheduleController(
            self.controller.api, self.schedule_clock, self.schedule_speed
        )

        def main() -> None:
            try:
                asyncio.run(
                    run_operator(
                        self.config,
                        controller=self.controller,
                        stop_flag=self._stop,
                        ready_flag=ready,
                        liveness=False,
                        schedules=self.schedules,
                    )
                )
            except BaseException as err:  # surfaced by stop()
                self._errors.append(err)

        self._thread = threading.Thread(target=main, name="trainforge-operator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            pytest.fail(f"the operator did not become ready in {timeout}s: {self._errors}")

    def stop(self, timeout: float = 30) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self._thread = None
        if alive:
            pytest.fail(f"the operator did not stop within {timeout}s")
        if self._errors:
            raise AssertionError(f"the operator crashed: {self._errors[0]!r}") from self._errors[0]


@pytest.fixture(scope="session")
def kube_client(control_plane: ControlPlane) -> Any:
    """An API client for the tier (and kopf's login pointed at it)."""
    return use_kubeconfig(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def trainforge_crd(control_plane: ControlPlane) -> None:
    """The generated CRD, installed once and Established."""
    control_plane.kubectl("apply", "-f", str(CRD_FILE), "-f", str(SCHEDULE_CRD_FILE), check=True)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=120s",
        "crd/trainingjobs.trainforge.io", "crd/trainingschedules.trainforge.io", check=True,
    )  # fmt: skip


@pytest.fixture
def tf_operator(kube_client: Any, trainforge_crd: None, namespace: str) -> Iterator[OperatorHandle]:
    """A running operator watching only this test's namespace; stopped after the test."""
    handle = OperatorHandle(config=operator_config_for(namespace), api_client=kube_client)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


class Cluster:
    """Small typed helpers over the API for the tests."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.custom = k8s.CustomObjectsApi(api_client)
        self.ns = namespace

    def job(self, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)  # type: ignore[no-any-return]
        except k8s.ApiException as err:
            if err.status == 404:
                return None
            raise

    def status(self, name: str) -> dict[str, Any]:
        return (self.job(name) or {}).get("status") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def wait_phase(self, name: str, phase: str, timeout: float = 40) -> dict[str, Any]:
        return wait_for(
            f"{name} phase {phase}",
            lambda: self.status(name) if self.phase(name) == phase else None,
            timeout,
        )

    def pods(self, job: str) -> list[Any]:
        return list(
            self.core.list_namespaced_pod(
                self.ns, label_selector=f"trainforge.io/job-name={job}"
            ).items
        )

    def annotate_pod(self, name: str, annotations: dict[str, str]) -> None:
        self.core.patch_namespaced_pod(name, self.ns, {"metadata": {"annotations": annotations}})

    def patch_job(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, name, {"spec": spec}
        )

    def events(self, name: str) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name},involvedObject.kind=TrainingJob"
        ).items
        return [(e.reason, e.message) for e in items]

    def event_reasons(self, name: str, *expected: str, timeout: float = 30) -> list[str]:
        """The job's Event reasons once all `expected` are among them: Events follow the status
        write (by design), so a test that saw the new status may still be ahead of them."""
        return wait_for(
            f"events {expected} on {name}",
            lambda: r if set(expected) <= set(r := [x for x, _ in self.events(name)]) else None,
            timeout,
        )

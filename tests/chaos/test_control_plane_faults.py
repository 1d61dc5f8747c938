"""Faults of the cluster rather than of the operator: API server restart, cut watches, lost node.

The operator runs as its own process (as in production) and is never restarted here: it must
ride these out by itself.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest
from chaos_lib import (
    EXIT,
    GROUP,
    LABEL_ATTEMPT,
    LABEL_JOB,
    PLURAL,
    RUN_SECONDS,
    VERSION,
    CuttableProxy,
    LoadSampler,
    OperatorProcess,
    Plan,
    PodLedger,
    check,
    check_deadline,
    draw_plans,
    guard_fake_kubelet_deletes,
    inject_failures,
    job_manifest,
    jobs_by_name,
    refused_kubelet_deletes,
    say,
)
from kubernetes import client as k8s
from operator_fixture import use_kubeconfig, wait_for
from tf_controlplane import ControlPlane, node_manifest

FULL = os.environ.get("CHAOS_SCALE", "ci") == "full"
RECOVERY_S = 30.0  # the operator's promise after the API server is back


def clients(cp: ControlPlane) -> tuple[k8s.CoreV1Api, k8s.CustomObjectsApi]:
    api: Any = use_kubeconfig(cp.kubeconfig)
    return k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)


def create(custom: k8s.CustomObjectsApi, namespace: str, names: list[str]) -> None:
    for name in names:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, job_manifest(name)
        )


def phases(custom: k8s.CustomObjectsApi, namespace: str) -> dict[str, str | None]:
    return {
        n: (j.get("status") or {}).get("phase") for n, j in jobs_by_name(custom, namespace).items()
    }


def finish(core: k8s.CoreV1Api, namespace: str, job: str, run_seconds: int = 0) -> None:
    """Make kwok end every live worker of `job` with exit 0 after `run_seconds`."""
    for pod in core.list_namespaced_pod(namespace, label_selector=f"{LABEL_JOB}={job}").items:
        core.patch_namespaced_pod(
            pod.metadata.name,
            namespace,
            {"metadata": {"annotations": {EXIT: "0", RUN_SECONDS: str(run_seconds)}}},
        )


@pytest.mark.timeout(600)
def test_apiserver_restart(chaos_tier: ControlPlane, namespace: str) -> None:
    """Jobs finish while the API server is down; after it is back the operator, never
    restarted, reports every one of them within 30 s, and nothing is lost or doubled."""
    core, custom = clients(chaos_tier)
    names = [f"chaos-{i:03d}" for i in range(12 if FULL else 6)]
    guard_fake_kubelet_deletes(chaos_tier, namespace)
    ledger, stop = PodLedger(core, namespace), threading.Event()
    threading.Thread(target=ledger.watch, args=(stop,), daemon=True).start()
    op = OperatorProcess(chaos_tier, namespace)
    load = LoadSampler()
    op.start()
    pid = op.proc.pid if op.proc else 0
    try:
        create(custom, namespace, names)
        wait_for(
            "every job Running",
            lambda: set(phases(custom, namespace).values()) == {"Running"},
            timeout=120,
        )
        during, after = names[: len(names) // 2], names[len(names) // 2 :]
        for name in during:  # these end while the API server is down
            finish(core, namespace, name, run_seconds=3)
        down = chaos_tier.restart("kube-apiserver", down_seconds=8)
        say(f"apiserver restarted ({down:.1f} s down)")
        back = time.monotonic()
        for name in after:
            finish(core, namespace, name)
        wait_for(
            "every job Succeeded after the restart",
            lambda: set(phases(custom, namespace).values()) == {"Succeeded"},
            timeout=RECOVERY_S + 30,
        )
        recovered = time.monotonic() - back
        plans = {n: Plan(0, permanent=False) for n in names}
        verdict = check("apiserver restart", core, custom, namespace, plans, ledger, timeout=30)
    finally:
        stop.set()
        alive = op.alive() and op.proc is not None and op.proc.pid == pid
        op.stop()
        loaded = load.stop()
    verdict.load = loaded
    verdict.scenario += (
        f" (down {down:.0f} s, all Succeeded {recovered:.0f} s after it was back), "
        f"{refused_kubelet_deletes(chaos_tier, namespace)} stale kwok deletes refused"
    )
    print(verdict.line())
    verdict.record()
    assert alive, "the operator died or was restarted during the API server restart"
    assert recovered <= RECOVERY_S, f"took {recovered:.0f}s after the API server was back"
    assert not verdict.problems(), verdict.problems()


@pytest.mark.timeout(1200)
def test_watch_cuts(chaos_tier: ControlPlane, namespace: str) -> None:
    """Every connection of the operator is cut every few seconds while jobs run through
    failures and restarts; no transition is missed."""
    core, custom = clients(chaos_tier)
    seed = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    plans = draw_plans(30 if FULL else 10, rng)
    guard_fake_kubelet_deletes(chaos_tier, namespace)
    host, port = chaos_tier.server.removeprefix("https://").split(":")
    proxy = CuttableProxy((host, int(port)))
    kubeconfig = proxy.kubeconfig(chaos_tier.kubeconfig, chaos_tier.workdir / "proxy.kubeconfig")
    ledger, stop = PodLedger(core, namespace), threading.Event()
    threading.Thread(target=ledger.watch, args=(stop,), daemon=True).start()
    inject_failures(ledger, plans, stop)
    op = OperatorProcess(chaos_tier, namespace, kubeconfig=kubeconfig)
    load = LoadSampler()
    op.start()
    cut_connections = 0
    try:
        create(custom, namespace, sorted(plans))
        for _ in range(20 if FULL else 6):
            time.sleep(rng.uniform(2, 5))
            cut_connections += proxy.cut()
        verdict = check(
            f"watch cuts (seed {seed})",
            core,
            custom,
            namespace,
            plans,
            ledger,
            timeout=check_deadline(len(plans)),
        )
        alive = op.alive()
    finally:
        stop.set()
        op.stop()
        proxy.close()
        loaded = load.stop()
    verdict.load = loaded
    verdict.scenario += (
        f": {proxy.cuts - 1} cuts, {cut_connections} connections cut, "
        f"{refused_kubelet_deletes(chaos_tier, namespace)} stale kwok deletes refused"
    )
    print(verdict.line())
    verdict.record()
    assert alive, "the operator exited"
    assert cut_connections > 0, "the cuts hit no connection: the operator is not behind the proxy"
    assert not verdict.problems(), verdict.problems()


@pytest.mark.timeout(600)
def test_node_loss(chaos_tier: ControlPlane, namespace: str) -> None:
    """The node of a running gang is deleted: the gang is rescheduled elsewhere, the reason
    says the node was lost, and with maxRestarts 0 the job is not failed for it."""
    core, custom = clients(chaos_tier)
    manifest = job_manifest("lost")
    manifest["spec"]["runPolicy"]["maxRestarts"] = 0
    op = OperatorProcess(chaos_tier, namespace)
    op.start()
    node = ""
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        wait_for(
            "lost Running", lambda: phases(custom, namespace).get("lost") == "Running", timeout=60
        )
        node = core.read_namespaced_pod("lost-worker-0", namespace).spec.node_name
        chaos_tier.kubectl("delete", "node", node, "--wait=false", check=True)
        say(f"deleted node {node} under lost-worker-0")

        def rescheduled() -> list[Any]:
            return [
                p
                for p in core.list_namespaced_pod(
                    namespace, label_selector=f"{LABEL_JOB}=lost"
                ).items
                if p.status.phase == "Running"
                and p.metadata.labels[LABEL_ATTEMPT] == "1"
                and p.metadata.deletion_timestamp is None
            ]

        def decided() -> dict[str, Any] | None:
            status: dict[str, Any] = jobs_by_name(custom, namespace)["lost"].get("status") or {}
            phase = status.get("phase")
            done = phase == "Failed" or (phase == "Running" and len(rescheduled()) == 2)
            return status if done else None

        # the pod GC deletes pods of a vanished node after ~40 s of quarantine
        status = wait_for("the gang rescheduled, or the job failed", decided, timeout=180)
        pods = rescheduled()
    finally:
        op.stop()
        if node:  # give the tier its capacity back
            chaos_tier.apply(node_manifest(node, "cpu", 0))
    say(f"node loss: phase {status.get('phase')}, lastFailure {status.get('lastFailure')}")
    assert status.get("phase") == "Running", status.get("message")
    assert len(pods) == 2
    assert all(p.spec.node_name != node for p in pods)
    last = status.get("lastFailure") or {}
    assert "node" in f"{last.get('reason', '')} {last.get('message', '')}".lower(), last
    # a disruption: restarted without counting against maxRestarts (docs/failure-policy.md)
    assert (last.get("reason"), last.get("action")) == ("NodeLost", "RestartIgnoringMax"), last
    assert (status.get("restarts"), status.get("restartsCountedTowardsMax")) == (1, 0), status

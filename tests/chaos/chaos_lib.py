"""Chaos helpers: the operator as a killable process, a planned failure per job, a pod ledger.

The operator runs as its own process (``python -m trainforge_operator.main``) so that SIGKILL is
the real thing: no clean shutdown, no flushed state. Each job gets a plan drawn from a seeded RNG
(succeed, fail retryably k times then succeed, fail permanently); an injector thread makes kwok
play it by annotating Running worker pods. A pod ledger watches every pod the run ever creates,
so duplicates (a second pod for the same job, attempt and index) are seen even if they are
deleted again before the end. At the end every job is checked against its plan.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.watch.watch import iter_resp_lines
from tf_controlplane import ControlPlane, _http_ok, free_port

from trainforge_api.base import GROUP as BASE_GROUP
from trainforge_api.base import VERSION as BASE_VERSION
from trainforge_api.trainingjob import PLURAL as TJ_PLURAL
from trainforge_operator.names import LABEL_ATTEMPT, LABEL_INDEX, LABEL_JOB

REPO = Path(__file__).resolve().parents[2]
EXIT = "kwok.trainforge.io/exit-code"
RUN_SECONDS = "kwok.trainforge.io/run-seconds"
GROUP, VERSION, PLURAL = BASE_GROUP, BASE_VERSION, TJ_PLURAL
RETRYABLE_EXIT, PERMANENT_EXIT = 137, 1


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [chaos] {message}", file=sys.stderr, flush=True)


# ---- the operator process ---------------------------------------------------------------------


@dataclass
class OperatorProcess:
    """The production entry point as a subprocess, killed with SIGKILL and started again."""

    cp: ControlPlane
    namespace: str
    resync_seconds: float = 2.0
    kubeconfig: str | None = None  # another path to the apiserver (the watch-cutting proxy)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    health_port: int = 0

    def config(self) -> dict[str, Any]:
        self.health_port = free_port()
        return {
            "namespaces": [self.namespace],
            "defaultNodePool": "cpu",
            "nodePools": {
                "gpu": {
                    "nodeSelector": {"trainforge.io/pool": "gpu"},
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                },
                "cpu": {"nodeSelector": {"trainforge.io/pool": "cpu"}},
            },
            "metricsPort": free_port(),
            "healthPort": self.health_port,
            "resyncSeconds": self.resync_seconds,
            "progressIntervalSeconds": 1.0,
            "progressSource": "annotation",
            "logLevel": "INFO",
            "logFormat": "json",
        }

    def start(self, wait: bool = True) -> None:
        cfg = self.cp.workdir / f"chaos-operator-{self.namespace}.yaml"
        cfg.write_text(yaml.safe_dump(self.config()))
        env = {**self.cp.env(), "TRAINFORGE_CONFIG": str(cfg)}
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        log = open(self.cp.log_path(f"chaos-operator-{self.namespace}"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trainforge_operator.main"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        log.close()
        self.starts += 1
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the operator exited with {self.proc.returncode}")
            if _http_ok(f"http://127.0.0.1:{self.health_port}/healthz"):
                return
            time.sleep(0.2)
        raise AssertionError(f"the operator was not healthy within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, no handler runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class KillSchedule(threading.Thread):
    """Kill the operator `kills` times, each `gap` seconds (uniform) after it last became
    healthy, restarting it after a random pause of at most `restart_within` seconds. `error`
    is set if the operator did not come back.

    The gap is timed from /healthz, not from the restart: on a loaded machine the operator
    takes 5-10 s to import and start, so kills 1-4 s after the restart all landed on a process
    that had not reconciled anything yet (seen on 2026-11-30: 30 kills, 2 operator starts)."""

    def __init__(
        self,
        op: OperatorProcess,
        kills: int,
        gap: tuple[float, float],
        restart_within: float,
        rng: random.Random,
        stop: threading.Event,
        healthy_within: float = 180,
    ) -> None:
        super().__init__(name="chaos-killer", daemon=True)
        self.op, self.kills, self.gap, self.restart_within = op, kills, gap, restart_within
        self.rng, self.stop, self.healthy_within = rng, stop, healthy_within
        self.error: AssertionError | None = None

    def run(self) -> None:
        try:
            for _ in range(self.kills):
                self.op.wait_healthy(self.healthy_within)
                if self.stop.wait(self.rng.uniform(*self.gap)):
                    return
                self.op.kill()
                time.sleep(self.rng.uniform(0, self.restart_within))
                self.op.start(wait=False)
            self.op.wait_healthy(self.healthy_within)
        except AssertionError as err:
            self.error = err


def kill_schedule(
    op: OperatorProcess,
    kills: int,
    gap: tuple[float, float],
    restart_within: float,
    rng: random.Random,
    stop: threading.Event,
) -> KillSchedule:
    """A KillSchedule, started."""
    killer = KillSchedule(op, kills, gap, restart_within, rng, stop)
    killer.start()
    return killer


# ---- the fake kubelet, held to what a real one does --------------------------------------------

KUBELET_GUARD = "chaos-fake-kubelet-deletes"


def guard_fake_kubelet_deletes(cp: ControlPlane, namespace: str) -> None:
    """Refuse, in `namespace`, a force delete (grace period 0, no UID precondition) of a pod
    that is not being deleted, and prove the refusal is in force before returning.

    kwok (v0.8.0) finishes a pod's deletion with such a delete, by name, from the pod object
    in its watch cache. Under load it replays that delete late, after the operator has created
    the next attempt's pod of the same name, and removes the new pod (seen on 2026-11-30:
    kwok deleted chaos-035-worker-0 at 12:03:12 and, replaying, again at 12:03:17, 4 s after
    attempt 2's pod of that name was created; the operator then made it again, a duplicate).
    A real kubelet only finishes pods already marked for deletion and sends the pod's UID as a
    precondition, so it cannot do this; the policy holds kwok to the same. Not for a test that
    needs the pod GC's force deletes of a lost node's pods (test_node_loss)."""
    cp.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": KUBELET_GUARD},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["DELETE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": (
                            "has(oldObject.metadata.deletionTimestamp)"
                            " || !has(request.options.gracePeriodSeconds)"
                            " || request.options.gracePeriodSeconds != 0"
                            " || (has(request.options.preconditions)"
                            " && has(request.options.preconditions.uid))"
                        ),
                        "message": (
                            "a force delete without a UID precondition of a pod not being "
                            "deleted (a fake kubelet's stale replay)"
                        ),
                    }
                ],
            },
        }
    )
    cp.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"{KUBELET_GUARD}-{namespace}"},
            "spec": {
                "policyName": KUBELET_GUARD,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kubelet-guard-probe", "namespace": namespace},
        "spec": {
            "containers": [{"name": "c", "image": "probe"}],
            "nodeSelector": {"trainforge.io/pool": "cpu"},
        },
    }
    cp.apply(probe)
    deadline = time.monotonic() + 60
    while True:  # the policy takes a moment to be compiled and bound
        proc = cp.kubectl(
            "delete", "pod", "kubelet-guard-probe", "-n", namespace,
            "--grace-period=0", "--force", "--wait=false",
        )  # fmt: skip
        if proc.returncode != 0 and KUBELET_GUARD in proc.stderr:
            break
        if proc.returncode == 0:  # deleted: the guard was not in force yet
            cp.apply(probe)
        if time.monotonic() > deadline:
            raise AssertionError(f"the fake-kubelet guard never refused: {proc.stderr}")
        time.sleep(1)
    cp.kubectl("delete", "pod", "kubelet-guard-probe", "-n", namespace, "--wait=false")


def refused_kubelet_deletes(cp: ControlPlane, namespace: str) -> int:
    """How many of kwok's deletes in `namespace` the guard refused (from kwok's log)."""
    log = cp.log_path("kwok")
    if not log.exists():
        return 0
    return sum(
        KUBELET_GUARD in line and f'"{namespace}/' in line
        for line in log.read_text(errors="replace").splitlines()
    )


# ---- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What kwok makes a job's workers do: `retryable_failures` gang restarts (exit 137 from
    one worker), then either success or (permanent) exit 1."""

    retryable_failures: int
    permanent: bool

    @property
    def phase(self) -> str:
        return "Failed" if self.permanent else "Succeeded"


def draw_plans(n: int, rng: random.Random) -> dict[str, Plan]:
    plans = {}
    for i in range(n):
        roll = rng.random()
        if roll < 0.15:
            plan = Plan(0, permanent=True)
        else:
            plan = Plan(rng.choice((0, 0, 1, 1, 2)), permanent=False)
        plans[f"chaos-{i:03d}"] = plan
    return plans


def job_manifest(name: str, workers: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
            "parallelism": {"nodes": workers},
            "resources": {"cpu": "100m", "memory": "64Mi"},
            "runPolicy": {
                "restartBackoffSeconds": 1,
                "maxRestartBackoffSeconds": 2,
                "maxRestarts": 5,
                "recovery": "RecreateGang",  # the attempts the ledger checks are gang restarts
            },
        },
    }


# ---- the pod ledger and the injector ----------------------------------------------------------


@dataclass
class PodLedger:
    """Every pod of the run, from a raw watch: UIDs per (job, attempt, index), and the latest
    object per UID (the injector acts on Running ones)."""

    core: k8s.CoreV1Api
    namespace: str
    uids: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def on_pod(self, pod: dict[str, Any], deleted: bool) -> None:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if LABEL_JOB not in labels:
            return
        key = (labels[LABEL_JOB], labels.get(LABEL_ATTEMPT, "?"), labels.get(LABEL_INDEX, "?"))
        with self.changed:
            self.uids[key].add(meta["uid"])
            if deleted:
                self.latest.pop(meta["uid"], None)
            else:
                self.latest[meta["uid"]] = pod
            self.changed.notify_all()

    def duplicates(self) -> dict[tuple[str, str, str], int]:
        with self.lock:
            return {k: len(v) for k, v in self.uids.items() if len(v) > 1}

    def watch(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                resp: Any = self.core.list_namespaced_pod(
                    self.namespace, label_selector=LABEL_JOB, _preload_content=False
                )
                listing = json.loads(resp.data)
                for pod in listing["items"]:
                    self.on_pod(pod, deleted=False)
                stream: Any = self.core.list_namespaced_pod(
                    self.namespace,
                    label_selector=LABEL_JOB,
                    watch=True,
                    timeout_seconds=30,
                    resource_version=listing["metadata"]["resourceVersion"],
                    _preload_content=False,
                )
                try:
                    for line in iter_resp_lines(stream):  # type: ignore[no-untyped-call]
                        event = json.loads(line)
                        if event["type"] == "ERROR" or stop.is_set():
                            break
                        self.on_pod(event["object"], deleted=event["type"] == "DELETED")
                finally:
                    stream.release_conn()
            except (urllib3.exceptions.HTTPError, k8s.ApiException, OSError):
                stop.wait(0.5)  # the apiserver is restarting, or the stream was cut


def inject_failures(
    ledger: PodLedger, plans: dict[str, Plan], stop: threading.Event
) -> threading.Thread:
    """Play each job's plan: when both workers of attempt a are Running, annotate them. Attempt
    a < retryable_failures: worker-1 exits 137; then exit 1 on worker-0 (permanent) or exit 0
    on all. Idempotent per pod UID, so a re-sighting never annotates twice."""
    done: set[str] = set()

    def act(pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        labels = meta["labels"]
        plan = plans.get(labels[LABEL_JOB])
        if plan is None or meta.get("deletionTimestamp"):
            return
        if (pod.get("status") or {}).get("phase") != "Running":
            return
        attempt, index = int(labels.get(LABEL_ATTEMPT, "0")), labels.get(LABEL_INDEX, "0")
        if attempt < plan.retryable_failures:
            code = RETRYABLE_EXIT if index == "1" else None
        elif plan.permanent:
            code = PERMANENT_EXIT if index == "0" else None
        else:
            code = 0
        done.add(meta["uid"])
        if code is None:
            return
        try:
            ledger.core.patch_namespaced_pod(
                meta["name"],
                ledger.namespace,
                {"metadata": {"annotations": {EXIT: str(code), RUN_SECONDS: "1"}}},
            )
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError):
            done.discard(meta["uid"])  # gone (or the apiserver is down): try again later

    def loop() -> None:
        while not stop.is_set():
            with ledger.changed:
                ledger.changed.wait(0.5)
                pods = [p for uid, p in ledger.latest.items() if uid not in done]
            for pod in pods:
                act(pod)

    thread = threading.Thread(target=loop, name="chaos-injector", daemon=True)
    thread.start()
    return thread


# ---- the verdict -------------------------------------------------------------------------------

TERMINAL = ("Succeeded", "Failed")


def check_deadline(jobs: int) -> float:
    """How long the end-of-run check waits at most for every job to end: generous and growing
    with the number of jobs, because on a loaded 2-core machine (load average 70-100 was seen)
    a job's passes queue behind everyone else's. `CHAOS_CHECK_SECONDS` overrides it."""
    return float(os.environ.get("CHAOS_CHECK_SECONDS", 180 + 8 * jobs))


STALL_SECONDS = 240.0  # the check also ends when no job has moved at all for this long


class LoadSampler:
    """The machine's 1-minute load average, sampled every few seconds in a thread: a chaos
    figure means little without the load it was measured under."""

    def __init__(self, every: float = 5.0) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(every,), name="load-sampler", daemon=True
        )
        self._thread.start()

    def _loop(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> str:
        """Stop sampling; returns e.g. 'load 2.1-7.9 (median 4.0)'."""
        self._stop.set()
        s = sorted(self.samples)
        return f"load {s[0]:.1f}-{s[-1]:.1f} (median {s[len(s) // 2]:.1f})"


@dataclass
class Verdict:
    """What the end of a chaos run found; printed and asserted. A job still mid-run when the
    check's deadline passed is reported apart from one that ended in the wrong state: the
    first says the machine (or the operator) was too slow, the second that an outcome is wrong.
    Both fail the run."""

    scenario: str
    kills: int = 0
    jobs_checked: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    wrong_states: list[str] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load: str = ""

    def line(self) -> str:
        load = f", {self.load}" if self.load else ""
        return (
            f"[chaos] {self.scenario}: kills survived {self.kills}, jobs checked "
            f"{self.jobs_checked}, duplicates {len(self.duplicates)}, orphans "
            f"{len(self.orphans)}, wrong states {len(self.wrong_states)}, still running at the "
            f"deadline {len(self.still_running)} ({self.seconds:.0f} s{load})"
        )

    def problems(self) -> str:
        return "\n".join(
            [f"duplicate pods: {self.duplicates}"] * bool(self.duplicates)
            + [f"orphans: {self.orphans}"] * bool(self.orphans)
            + [f"wrong: {w}" for w in self.wrong_states]
            + [f"still running at the deadline: {r}" for r in self.still_running]
        )

    def record(self) -> None:
        """Append the figures to $CHAOS_REPORT (a file) when set, for `make test-chaos`."""
        path = os.environ.get("CHAOS_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC {self.line()}\n")


def jobs_by_name(custom: k8s.CustomObjectsApi, namespace: str) -> dict[str, dict[str, Any]]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return {j["metadata"]["name"]: j for j in items}


def _progress(jobs: dict[str, dict[str, Any]], names: set[str]) -> tuple[Any, ...]:
    """What moves while jobs run: each job's phase, attempt and restarts."""
    status = [(jobs.get(n) or {}).get("status") or {} for n in sorted(names)]
    return tuple((s.get("phase"), s.get("attempt"), s.get("restarts")) for s in status)


def wait_terminal(
    custom: k8s.CustomObjectsApi,
    namespace: str,
    names: set[str],
    timeout: float,
    stall: float = STALL_SECONDS,
) -> dict[str, dict[str, Any]]:
    """Every named job Succeeded or Failed, or `timeout` passed, or no job moved (phase,
    attempt, restarts) for `stall` seconds: the jobs as last read."""
    start = time.monotonic()
    deadline, last_say, moved, seen = start + timeout, 0.0, start, ()
    jobs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and time.monotonic() - moved < stall:
        try:
            jobs = jobs_by_name(custom, namespace)
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError):
            time.sleep(1)
            continue
        now = _progress(jobs, names)
        if now != seen:
            seen, moved = now, time.monotonic()
        done = sum(phase in TERMINAL for phase, _, _ in now)
        if done == len(names):
            return jobs
        if time.monotonic() - last_say > 15:
            last_say = time.monotonic()
            say(f"{done}/{len(names)} jobs finished ({time.monotonic() - start:.0f} s)")
        time.sleep(1)
    say(f"the check stopped waiting after {time.monotonic() - start:.0f} s")
    return jobs


def judge_jobs(verdict: Verdict, jobs: dict[str, dict[str, Any]], plans: dict[str, Plan]) -> None:
    """Compare each job with its plan: still running, or ended in the wrong state."""
    for name, plan in sorted(plans.items()):
        status = (jobs.get(name) or {}).get("status") or {}
        phase, restarts = status.get("phase"), status.get("restarts", 0)
        said = f"(message: {status.get('message')!r}, lastFailure: {status.get('lastFailure')})"
        if phase not in TERMINAL:
            verdict.still_running.append(
                f"{name}: {phase} attempt={status.get('attempt')} restarts={restarts}, planned "
                f"{plan.phase} restarts={plan.retryable_failures} {said}"
            )
            continue
        if phase != plan.phase or restarts != plan.retryable_failures:
            verdict.wrong_states.append(
                f"{name}: {phase} restarts={restarts}, planned {plan.phase} "
                f"restarts={plan.retryable_failures} {said}"
            )
        elif plan.permanent and (status.get("lastFailure") or {}).get("exitCode") != 1:
            verdict.wrong_states.append(f"{name}: lastFailure {status.get('lastFailure')}")


def find_orphans(
    core: k8s.CoreV1Api, namespace: str, jobs: dict[str, dict[str, Any]], ended: set[str]
) -> list[str]:
    """Children without a live owner, and pods of a stale attempt of a job that has ended.
    A job still running may hold a stale pod for a moment (a pass deletes it next), so its
    children are judged only once it has ended; such a job already fails the run."""
    uids = {j["metadata"]["uid"]: j for j in jobs.values()}
    orphans = []
    for kind, items in (
        ("pod", core.list_namespaced_pod(namespace).items),
        ("service", core.list_namespaced_service(namespace).items),
        ("configmap", core.list_namespaced_config_map(namespace).items),
    ):
        for obj in items:
            owners = [o.uid for o in obj.metadata.owner_references or []]
            labels = obj.metadata.labels or {}
            if LABEL_JOB not in labels:
                continue
            if not any(uid in uids for uid in owners):
                orphans.append(f"{kind}/{obj.metadata.name} (no live owner)")
                continue
            owner = uids[next(u for u in owners if u in uids)]
            if owner["metadata"]["name"] not in ended:
                continue
            current = str((owner.get("status") or {}).get("attempt", 0))
            if kind == "pod" and labels.get(LABEL_ATTEMPT, current) != current:
                orphans.append(
                    f"pod/{obj.metadata.name} of attempt {labels[LABEL_ATTEMPT]} "
                    f"(job ended at attempt {current})"
                )
    return orphans


def check(
    scenario: str,
    core: k8s.CoreV1Api,
    custom: k8s.CustomObjectsApi,
    namespace: str,
    plans: dict[str, Plan],
    ledger: PodLedger,
    timeout: float,
    settle: float = 30.0,
) -> Verdict:
    """Wait for every job to end, then compare each with its plan and look for strays. A stray
    is counted only if it is still there `settle` seconds after the jobs ended (a delete sent
    by the last pass may still be on its way); a stray that stays is an orphan. The jobs are
    judged as read after a few more resync periods, so a job that ended and was then started
    again (a crash window) is caught."""
    start = time.monotonic()
    names = set(plans)
    wait_terminal(custom, namespace, names, timeout)
    time.sleep(5)
    settled = time.monotonic() + settle
    while True:
        jobs = _read_jobs(custom, namespace)
        ended = {
            n for n in names if ((jobs.get(n) or {}).get("status") or {}).get("phase") in TERMINAL
        }
        orphans = find_orphans(core, namespace, jobs, ended)
        if not orphans or time.monotonic() > settled:
            break
        time.sleep(2)
    verdict = Verdict(scenario, jobs_checked=len(plans))
    judge_jobs(verdict, jobs, plans)
    verdict.duplicates = {"/".join(k): v for k, v in ledger.duplicates().items()}
    verdict.orphans = orphans
    verdict.seconds = time.monotonic() - start
    return verdict


def _read_jobs(
    custom: k8s.CustomObjectsApi, namespace: str, tries: int = 30
) -> dict[str, dict[str, Any]]:
    """jobs_by_name, riding out a moment when the apiserver does not answer."""
    for _ in range(tries - 1):
        try:
            return jobs_by_name(custom, namespace)
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError):
            time.sleep(1)
    return jobs_by_name(custom, namespace)


# ---- cutting watches -----------------------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy in front of the apiserver (TLS passes through untouched: its certificate
    names 127.0.0.1). `cut()` closes every open connection at once, as a load balancer or a
    network blip does to long-lived watches; clients must reconnect and miss nothing."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: set[Any] = set()
        self.lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.conns |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._close(s)

    def _close(self, s: Any) -> None:
        with self.lock:
            self.conns.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def cut(self) -> int:
        """Close every open connection; returns how many there were."""
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            self._close(s)
        self.cuts += 1
        return len(conns) // 2

    def close(self) -> None:
        self.listener.close()
        self.cut()

    def kubeconfig(self, original: str, path: Path) -> str:
        """A copy of `original` that points at this proxy."""
        cfg = json.loads(Path(original).read_text())
        cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(json.dumps(cfg))
        path.chmod(0o600)
        return str(path)

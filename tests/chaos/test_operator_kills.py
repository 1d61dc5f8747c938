"""Operator SIGKILLed at random moments while jobs run with randomly injected worker failures.

Two schedules, each at two sizes (CHAOS_SCALE=ci, the default, is what `make test` can afford;
CHAOS_SCALE=full is `make test-chaos`):

- ``random``: kills at random moments (full: 20 kills during 100 jobs, 2-8 s apart);
- ``stress``: kills 1-4 s apart, restarted within 1 s (full: 30 kills during 50 jobs), which is
  what lands kills between a pass's creates/deletes and its status write.

The end-of-run check waits for every job to end (up to `check_deadline(jobs)`, longer the more
jobs, as a loaded machine needs), and reports a job still mid-run at the deadline apart from one
that ended wrong; both fail. Every job must be in its planned terminal phase with its planned
restart count, no (job, attempt, index) may ever have had two pods, and no child may be left
without a live owner or, once its job has ended, from a stale attempt. The seed is printed (and
CHAOS_SEED replays a run).
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest
from chaos_lib import (
    GROUP,
    PLURAL,
    VERSION,
    LoadSampler,
    OperatorProcess,
    PodLedger,
    check,
    check_deadline,
    draw_plans,
    guard_fake_kubelet_deletes,
    inject_failures,
    job_manifest,
    kill_schedule,
    refused_kubelet_deletes,
    say,
)
from kubernetes import client as k8s
from operator_fixture import use_kubeconfig
from tf_controlplane import ControlPlane

FULL = os.environ.get("CHAOS_SCALE", "ci") == "full"
# name: (jobs, kills, seconds between kills, restart within seconds, seconds to spread creates)
SCHEDULES = {
    "random": (100, 20, (2.0, 8.0), 3.0, 60.0) if FULL else (16, 5, (2.0, 6.0), 2.0, 10.0),
    "stress": (50, 30, (1.0, 4.0), 1.0, 40.0) if FULL else (12, 8, (1.0, 4.0), 1.0, 8.0),
}


def create_spread(
    custom: k8s.CustomObjectsApi,
    namespace: str,
    names: list[str],
    spread: float,
    rng: random.Random,
) -> threading.Thread:
    """Create the jobs at random moments over `spread` seconds (so kills meet every phase)."""
    times = sorted(rng.uniform(0, spread) for _ in names)

    def loop() -> None:
        start = time.monotonic()
        for name, at in zip(names, times, strict=True):
            time.sleep(max(0.0, start + at - time.monotonic()))
            for _ in range(30):  # the apiserver is up; retry only transient errors
                try:
                    custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, job_manifest(name)
                    )
                    break
                except k8s.ApiException as err:
                    if err.status == 409:
                        break
                    time.sleep(1)

    thread = threading.Thread(target=loop, name="chaos-creator", daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(2700 if FULL else 900)  # the kills, then check_deadline(jobs)
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_operator_kills(chaos_tier: ControlPlane, namespace: str, schedule: str) -> None:
    jobs, kills, gap, restart_within, spread = SCHEDULES[schedule]
    seed = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))
    say(f"{schedule}: {jobs} jobs, {kills} kills {gap[0]}-{gap[1]} s apart, seed {seed}")
    rng = random.Random(seed)
    api: Any = use_kubeconfig(chaos_tier.kubeconfig)
    core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
    plans = draw_plans(jobs, rng)
    guard_fake_kubelet_deletes(chaos_tier, namespace)
    ledger, stop = PodLedger(core, namespace), threading.Event()
    threading.Thread(target=ledger.watch, args=(stop,), daemon=True).start()
    inject_failures(ledger, plans, stop)
    op = OperatorProcess(chaos_tier, namespace)
    load = LoadSampler()
    op.start()
    try:
        creator = create_spread(custom, namespace, sorted(plans), spread, rng)
        killer = kill_schedule(op, kills, gap, restart_within, rng, stop)
        killer.join()
        creator.join()
        assert killer.error is None, killer.error
        verdict = check(
            f"{schedule} (seed {seed})",
            core,
            custom,
            namespace,
            plans,
            ledger,
            timeout=check_deadline(jobs),
        )
        verdict.kills = op.kills
    finally:
        stop.set()
        op.stop()
        loaded = load.stop()
    verdict.load = loaded
    verdict.scenario += (
        f", {refused_kubelet_deletes(chaos_tier, namespace)} stale kwok deletes refused"
    )
    print(verdict.line())
    say(verdict.line().removeprefix("[chaos] "))
    verdict.record()
    assert op.kills == kills
    assert not verdict.problems(), verdict.problems()

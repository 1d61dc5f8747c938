"""CPU cost of one steady reconcile pass: a Running job with its Service, ConfigMap and pods
known, nothing to change (what every progress poll and pod event of a running job costs).

The control-plane burst (bench/compare.py) spends most of its operator CPU in such passes: a
Running job is polled every progressIntervalSeconds, so the longer a burst takes on a loaded
machine, the more passes each job gets. This times `decision.decide` plus the status
comparison the controller does after it, in process, without any API call:

    python -m bench.pass_cost [--passes 2000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import time
from typing import Any

from bench import control_plane as cpb
from trainforge_api.context import parse_spec
from trainforge_operator import builders, decision
from trainforge_operator.plan import Observed
from trainforge_operator.status import status_dict


def running_job() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The bench's 2-worker job, reconciled until Running, and its Running pods."""
    config = cpb.tier_operator_config(cpb.NAMESPACE)
    body: dict[str, Any] = cpb.job_manifest("bench-000", 2)
    body["metadata"].update(
        uid="u1", generation=1, resourceVersion="5", creationTimestamp="2026-11-30T08:00:00Z"
    )
    now = dt.datetime.now(dt.UTC)
    first = decision.decide(Observed(body, [], False, False, now), config)
    body["status"] = status_dict(first.status)
    job, spec = builders.JobRef.from_body(body), parse_spec(body)
    pods = builders.build_gang(job, spec, config, attempt=0)
    started = "2026-11-30T08:00:05Z"
    for pod in pods:
        pod["spec"] = {"nodeName": "gpu-0"}
        pod["status"] = {
            "phase": "Running",
            "startTime": started,
            "containerStatuses": [
                {"name": "worker", "ready": True, "state": {"running": {"startedAt": started}}}
            ],
        }
    for _ in range(3):  # Starting -> Running -> steady
        plan = decision.decide(Observed(body, pods, True, True, now), config)
        body["status"] = status_dict(plan.status)
    return body, pods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 25")
    args = parser.parse_args(argv)
    config = cpb.tier_operator_config(cpb.NAMESPACE)
    body, pods = running_job()
    now = dt.datetime.now(dt.UTC)

    def one() -> bool:
        plan = decision.decide(Observed(body, pods, True, True, now), config)
        return bool(status_dict(plan.status) == body["status"])

    if not one():
        raise SystemExit("the steady pass changed the status: not a steady state")
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    t0 = time.process_time()
    for _ in range(args.passes):
        one()
    cpu = time.process_time() - t0
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print(f"phase {body['status']['phase']}: {1000 * cpu / args.passes:.3f} ms CPU per pass")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

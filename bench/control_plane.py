"""Control-plane cost of the operator.

1. `decide`: CPU time of one pure reconcile decision for gangs of 1..256 pods (the part of a
   reconcile that grows with the gang); budget: < 5 ms for a 256-pod gang.
2. `tier` (with `--tier`, needs the control-plane tier binaries, see tests/integration): the real
   operator in-process against apiserver + scheduler + kwok; creates `--jobs` TrainingJobs of
   `--nodes` pods at once and measures apply -> all pods Running -> phase Running per job, plus the
   operator's reconcile-duration histogram.

Writes bench/results/control-plane.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from trainforge_operator.config import OperatorConfig
from trainforge_operator.reconcile import Observed, decide, status_dict

RESULTS = Path(__file__).parent / "results" / "control-plane.json"
DECIDE_BUDGET_MS = 5.0


def _job(nodes: int, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "bench", "namespace": "b", "uid": "u", "generation": 1},
        "spec": {"command": ["x"], "parallelism": {"nodes": nodes}},
        "status": status,
    }


def _pod(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"bench-worker-{i}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"trainforge.io/replica-index": str(i), "trainforge.io/attempt": "0"},
        },
        "spec": {"nodeName": "n"},
        "status": {"phase": "Running"},
    }


def bench_decide(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    """Median and p95 of decide() on a steady Running gang (the common case)."""
    config = OperatorConfig()
    now = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    rows = []
    for nodes in sizes:
        pods = [_pod(i) for i in range(nodes)]
        first = decide(Observed(_job(nodes, {"phase": "Starting"}), pods, True, True, now), config)
        steady = Observed(_job(nodes, status_dict(first.status)), pods, True, True, now)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            decide(steady, config)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        rows.append(
            {
                "nodes": nodes,
                "median_ms": round(statistics.median(times), 4),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))], 4),
            }
        )
        print(f"decide  nodes={nodes:4d}  median={rows[-1]['median_ms']:.3f} ms")
    return rows


def bench_tier(jobs: int, nodes: int) -> dict[str, Any]:
    """Apply `jobs` TrainingJobs at once and time them to Running on the real tier."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
    import tf_controlplane
    from operator_fixture import OperatorHandle, operator_config_for, use_kubeconfig
    from prometheus_client import REGISTRY

    ns = "bench"
    with tf_controlplane.running_control_plane(say=print) as cp:
        crd = Path(__file__).resolve().parents[1] / "crds" / "trainingjobs.trainforge.io.yaml"
        cp.kubectl("apply", "-f", str(crd), check=True)
        cp.kubectl("wait", "--for=condition=Established", "crd/trainingjobs.trainforge.io")
        cp.kubectl("create", "namespace", ns, check=True)
        while cp.kubectl("get", "serviceaccount", "default", "-n", ns).returncode:
            time.sleep(0.2)
        api = use_kubeconfig(cp.kubeconfig)
        handle = OperatorHandle(config=operator_config_for(ns), api_client=api)
        handle.start()
        try:
            manifests = [
                {
                    "apiVersion": "trainforge.io/v1alpha1",
                    "kind": "TrainingJob",
                    "metadata": {"name": f"b{i}", "namespace": ns},
                    "spec": {"command": ["x"], "parallelism": {"nodes": nodes}},
                }
                for i in range(jobs)
            ]
            start = time.monotonic()
            cp.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(m) for m in manifests))
            running: dict[str, float] = {}
            deadline = start + 300
            while len(running) < jobs and time.monotonic() < deadline:
                items = cp.kubectl_json("get", "tj", "-n", ns)["items"]
                for item in items:
                    name = item["metadata"]["name"]
                    if name not in running and item.get("status", {}).get("phase") == "Running":
                        running[name] = time.monotonic() - start
                time.sleep(0.25)
        finally:
            handle.stop()
    latencies = sorted(running.values())
    hist = {
        s.name: s.value
        for m in REGISTRY.collect()
        if m.name == "trainforge_reconcile_duration_seconds"
        for s in m.samples
        if s.name.endswith(("_count", "_sum"))
    }
    return {
        "jobs": jobs,
        "nodes_per_job": nodes,
        "running": len(running),
        "to_running_median_s": round(statistics.median(latencies), 2) if latencies else None,
        "to_running_max_s": round(latencies[-1], 2) if latencies else None,
        "reconciles": hist.get("trainforge_reconcile_duration_seconds_count"),
        "reconcile_mean_ms": round(
            1000
            * hist.get("trainforge_reconcile_duration_seconds_sum", 0)
            / max(hist.get("trainforge_reconcile_duration_seconds_count", 1), 1),
            2,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--tier", action="store_true", help="also run against the real tier")
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=4)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "host": platform.node(),
        "python": platform.python_version(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "decide": bench_decide([1, 8, 64, 256], args.repeats),
        "decide_budget_ms": DECIDE_BUDGET_MS,
    }
    if args.tier:
        result["tier"] = bench_tier(args.jobs, args.nodes)
        print(f"tier    {result['tier']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    worst = max(r["median_ms"] for r in result["decide"])
    print(f"wrote {RESULTS}; worst decide median {worst:.3f} ms (budget {DECIDE_BUDGET_MS} ms)")
    return 0 if worst <= DECIDE_BUDGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())

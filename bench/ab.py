"""A/B of the operator: a base git revision against the working tree, interleaved, on the burst
of `bench/compare.py` (optionally with Kubeflow tuned beside them).

Why: on a shared 2-core machine one run's latencies swing twice over with the load, so a change
is judged against the code before it in the same rounds, in rotating order, not against an
earlier run. The base revision is checked out into a temporary git worktree and the operator
process is pointed at it through PYTHONPATH; `new` is this checkout as it is, uncommitted edits
included. Per run it prints p99 created, CPU per job, status writes and passes per job.

    python -m bench.ab --base HEAD~1 --rounds 2 [--kubeflow] [--jobs 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import compare
from bench import control_plane as cpb

tier = cpb.tier
STATUS_WRITES = ("PUT trainingjobs/status", "PUT pytorchjobs/status")


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """`revision` checked out beside this repository, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="trainforge-ab-"))
    git = ["git", "-C", str(cpb.REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), revision], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)


def python_path(tree: Path) -> str:
    return os.pathsep.join(str(tree / d) for d in ("api", "operator", "training_image"))


def one_run(variant: str, base_tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run of `variant` (base, new or kubeflow) on a fresh control plane."""
    saved = os.environ.get("PYTHONPATH")
    if variant == "base":
        os.environ["PYTHONPATH"] = python_path(base_tree)
    else:
        os.environ.pop("PYTHONPATH", None)
    try:
        name = "kubeflow-tuned" if variant == "kubeflow" else "trainforge"
        kubeflow = compare.kubeflow_dir() if variant == "kubeflow" else None
        result = compare.run_once_more(name, args, kubeflow)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    per_job = result["api_requests_per_job"]
    return {
        "variant": variant,
        "created_p99_s": result["created_p99_s"],
        "all_running_s": result["all_running_s"],
        "cpu_ms_per_job": result["cpu_ms_per_job"],
        "peak_rss_mb": result["peak_rss_mb"],
        "status_writes_per_job": next((per_job[k] for k in STATUS_WRITES if k in per_job), None),
        "passes_per_job": result["passes_per_job"],
        "load_average_1m": result["load_average_1m"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kubeflow", action="store_true", help="Kubeflow tuned in every round")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, help="also write the runs as JSON here")
    args = parser.parse_args(argv)
    args.settle, args.keep = 5.0, False
    variants = ["base", "new"] + (["kubeflow"] if args.kubeflow else [])
    tier.ensure_tools(cpb.say)
    cpb.ensure_operator_bytecode()
    runs: list[dict[str, Any]] = []
    with worktree(args.base) as base_tree:
        for r in range(args.rounds):
            order = compare.rotated(variants, r)
            for variant in order:
                cpb.say(f"round {r + 1}/{args.rounds}: {variant}")
                run = one_run(variant, base_tree, args) | {"round": r + 1}
                print(json.dumps(run), flush=True)
                runs.append(run)
    print(
        f"\n{'round':>5} {'variant':<9} {'p99 s':>7} {'CPU ms':>7} {'writes':>7} {'passes':>7} load"
    )
    for run in runs:
        print(
            f"{run['round']:>5} {run['variant']:<9} {run['created_p99_s']:>7} "
            f"{run['cpu_ms_per_job']:>7} {run['status_writes_per_job']!s:>7} "
            f"{run['passes_per_job']!s:>7} {run['load_average_1m']}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps({"base": args.base, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

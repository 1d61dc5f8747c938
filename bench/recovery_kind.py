"""Recovery time on kind: in-place recovery vs recreating the gang, in one run.

The same 2-pod digits DDP job (examples/digits-ddp.yaml, checkpoint every 10 steps) runs twice on
the e2e kind cluster (hack/e2e-up.sh, the operator from this working tree): once with
`runPolicy.recovery: InPlace`, once with `RecreateGang`. Past step 15 worker 1's pod is
force-deleted, and the clock runs until rank 0's progress (as the operator reports it in status)
shows the gang resumed from a checkpoint and advancing again (tests/e2e/recovery_lib.py). The
operator polls rank 0 every progressIntervalSeconds (5 s by default), which bounds the resolution.
Writes bench/results/recovery-kind.json with both times and the ratio recreate / in-place.

Run it under the kind lock the other kind users share:
    flock /tmp/trainforge-kind.lock .venv/bin/python -m bench.recovery_kind
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "recovery-kind.json"
MODES = ("InPlace", "RecreateGang")


class _NoPytest:
    """bring_up() takes pytest's config only to lift output capture; there is none here."""

    class pluginmanager:  # noqa: N801 - mimics pytest.Config.pluginmanager
        @staticmethod
        def getplugin(_: str) -> None:
            return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="digits epochs per run")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    from recovery_lib import kill_worker_and_time, recovery_job
    from tf_kind import bring_up

    cluster = bring_up(_NoPytest())  # type: ignore[arg-type]
    runs: dict[str, Any] = {}
    for mode in MODES:
        name = f"bench-recovery-{mode.lower()}"
        timing, status = kill_worker_and_time(cluster, recovery_job(name, mode, args.epochs))
        runs[mode] = {
            **asdict(timing),
            "phase": status.get("phase"),
            "attempt": status.get("attempt"),
            "inPlaceRestarts": status.get("inPlaceRestarts"),
        }
        print(f"{mode}: kill -> steps advancing again in {timing.seconds:.1f}s", flush=True)
        cluster.kubectl("delete", "trainingjob", name, "--ignore-not-found", "--wait=false")
    ratio = runs["RecreateGang"]["seconds"] / runs["InPlace"]["seconds"]
    result = {
        "benchmark": "recovery-kind",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "what": "seconds from force-deleting worker 1 to rank 0's steps advancing after resume",
        "runs": runs,
        "ratio_recreate_over_in_place": round(ratio, 2),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recreate / in-place = {ratio:.2f}; wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

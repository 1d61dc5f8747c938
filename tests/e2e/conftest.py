"""Pytest plugin for the kind tier: an offline kind cluster with the operator installed by helm.

``hack/e2e-up.sh`` builds whatever is missing (node image, images, tools: long on a cold machine)
and creates or reuses the cluster ``$TRAINFORGE_CLUSTER`` (default ``trainforge-e2e``). That runs
once, after collection and outside per-test timeouts. If it fails, every e2e test fails with the
command to run by hand; nothing is skipped. The cluster is kept for reuse; ``hack/demo.sh down``
removes it.

When a test fails, the operator's logs (current and previous container), all events, the
TrainingJobs and every worker's log are written to ``e2e-diagnostics/<test>/`` and the last lines of
the operator log are attached to the failure report.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from tf_kind import REPO_ROOT, KindCluster, bring_up

_STATE: dict[str, Any] = {}
DIAGNOSTICS = REPO_ROOT / "e2e-diagnostics"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Bring the cluster up before the first test so a cold build is not cut by test timeouts."""
    if not any("kind_cluster" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    try:
        _STATE["cluster"] = bring_up(session.config)
    except (RuntimeError, OSError, KeyError) as exc:
        _STATE["error"] = str(exc)


@pytest.fixture(scope="session")
def kind_cluster() -> KindCluster:
    """The e2e cluster (created or reused by hack/e2e-up.sh)."""
    if "error" in _STATE:
        pytest.fail(f"kind tier unavailable: {_STATE['error']}", pytrace=False)
    cluster = _STATE.get("cluster")
    assert isinstance(cluster, KindCluster)
    os.environ.setdefault("KUBECONFIG", cluster.kubeconfig)
    return cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """On a failed e2e test, save what a person would look at first, and say where it is."""
    report = yield
    cluster = _STATE.get("cluster")
    if report.failed and call.when == "call" and isinstance(cluster, KindCluster):
        dest = DIAGNOSTICS / re.sub(r"[^A-Za-z0-9_.-]", "_", item.name)
        try:
            files = cluster.dump_diagnostics(dest)
        except Exception as exc:  # diagnostics must never hide the real failure
            report.sections.append(("e2e diagnostics", f"could not collect: {exc}"))
        else:
            tail = (dest / "operator.log").read_text().splitlines()[-40:]
            report.sections.append(
                (
                    "e2e diagnostics",
                    f"{len(files)} files in {dest}\n--- operator log (last 40 lines) ---\n"
                    + "\n".join(tail),
                )
            )
    return report

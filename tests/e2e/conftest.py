"""Pytest plugin for the kind tier: an offline kind cluster with the operator installed by helm.

``hack/e2e-up.sh`` builds whatever is missing (node image, images, tools: long on a cold machine)
and creates or reuses the cluster ``$TRAINFORGE_CLUSTER`` (default ``trainforge-e2e``). That runs
once, after collection and outside per-test timeouts. If it fails, every e2e test fails with the
command to run by hand; nothing is skipped. The cluster is kept for reuse; ``hack/demo.sh down``
removes it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from tf_kind import KindCluster, bring_up

_STATE: dict[str, Any] = {}


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

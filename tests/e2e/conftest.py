"""Pytest plugin for the kind tier: an offline kind cluster with the operator installed by helm.

``hack/e2e-up.sh`` builds whatever is missing (node image, images, tools: long on a cold machine)
and creates or reuses the cluster ``$TRAINFORGE_CLUSTER`` (default ``trainforge-e2e``). That runs
once, after collection and outside per-test timeouts. If it fails, every e2e test fails with the
command to run by hand; nothing is skipped. The cluster is kept for reuse; ``hack/demo.sh down``
removes it.

When a test fails, the operator's logs (current and previous container), all events, the
TrainingJobs and every worker's log are written to ``e2e-diagnostics/<test>/`` and the last lines of
the operator log are attached to the failure report.

The tier may run on pytest-xdist workers (``make test-e2e E2E_XDIST="-n 2 --dist loadfile"``):
the first worker to finish collecting runs ``hack/e2e-up.sh`` and the others reuse its result,
and a test marked ``operator_restart`` (it deletes the operator pod) runs alone: it waits until
the tests on other workers have ended, and none starts until it has.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from tf_kind import REPO_ROOT, KindCluster, bring_up

_STATE: dict[str, Any] = {}
DIAGNOSTICS = REPO_ROOT / "e2e-diagnostics"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "operator_restart: deletes or restarts the operator, so it runs with no other e2e test "
        "beside it (tests/e2e/conftest.py)",
    )


def _run_dir(config: pytest.Config) -> Path | None:
    """A directory the xdist workers of this run share (None without xdist)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    path = Path(tempfile.gettempdir()) / f"trainforge-e2e-{workerinput['testrunuid']}"
    if not path.exists():
        for old in path.parent.glob("trainforge-e2e-*"):  # earlier runs' lock files
            if old.is_dir() and time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
        path.mkdir(exist_ok=True)
    return path


def _bring_up_once(config: pytest.Config) -> dict[str, Any]:
    """Run hack/e2e-up.sh once per test run: under xdist the first worker runs it and writes
    the result (or the error) next to the lock; the others wait for it and read it."""
    run_dir = _run_dir(config)
    if run_dir is None:
        return _bring_up_result(config)
    with (run_dir / "bring-up.lock").open("a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        result_file = run_dir / "bring-up.json"
        if result_file.exists():
            return dict(json.loads(result_file.read_text()))
        result = _bring_up_result(config)
        result_file.write_text(json.dumps(result))
        return result


def _bring_up_result(config: pytest.Config) -> dict[str, Any]:
    try:
        return {"cluster": asdict(bring_up(config))}
    except (RuntimeError, OSError, KeyError) as exc:
        return {"error": str(exc)}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Bring the cluster up before the first test so a cold build is not cut by test timeouts."""
    if not any("kind_cluster" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    result = _bring_up_once(session.config)
    if "error" in result:
        _STATE["error"] = result["error"]
    else:
        _STATE["cluster"] = KindCluster(**result["cluster"])


@pytest.fixture(autouse=True)
def _operator_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under xdist, a test marked operator_restart holds an exclusive lock and every other test a
    shared one. Each first passes a turnstile, which the exclusive test keeps closed until it
    ends: no new test starts while it waits for the running ones to end, or while it runs."""
    run_dir = _run_dir(request.config)
    if run_dir is None:
        yield
        return
    exclusive = request.node.get_closest_marker("operator_restart") is not None
    # Closing a file releases its flock.
    with (run_dir / "turnstile.lock").open("a+b") as turnstile:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        with (run_dir / "operator.lock").open("a+b") as turn:
            fcntl.flock(turn, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if not exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
            yield


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

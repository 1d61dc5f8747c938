"""Pytest plugin for the control-plane tier: a real apiserver/KCM/scheduler + kwok fake nodes.

Fixtures:
- ``control_plane`` (session): attributes ``.kubeconfig`` (path str), ``.server`` (URL) and
  ``.kubectl(*args) -> subprocess.CompletedProcess`` (plus ``.kubectl_json``, ``.apply``, ``.env``).
  Missing binaries are built once, before the first test (outside per-test timeouts); a build
  failure fails the tests with the command to run. Nothing is ever skipped.
- ``namespace`` (function): a fresh namespace (its ``default`` ServiceAccount exists, so pods can
  be created at once), deleted afterwards.

Set ``TF_KEEP_CONTROL_PLANE=1`` to keep the work dir (logs, kubeconfig) after the session.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator

import pytest
from tf_controlplane import ControlPlane, TierError, Toolset, ensure_tools, running_control_plane

_BUILD_RESULT: dict[str, Toolset | str] = {}


def _say(config: pytest.Config, message: str) -> None:
    """Print progress even while pytest captures output (builds can take many minutes)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        print(message, flush=True)
        return
    with capman.global_and_fixture_disabled():
        print(message, flush=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing tools before any test starts, so per-test timeouts do not cover a build."""
    if not any("control_plane" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    try:
        _BUILD_RESULT["tools"] = ensure_tools(lambda m: _say(session.config, m))
    except TierError as exc:
        _BUILD_RESULT["error"] = str(exc)


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    """One control-plane tier for the whole session, torn down at the end."""
    error = _BUILD_RESULT.get("error")
    if isinstance(error, str):
        pytest.fail(f"control-plane tier tools are not available: {error}", pytrace=False)
    tools = _BUILD_RESULT.get("tools")
    keep = os.environ.get("TF_KEEP_CONTROL_PLANE") == "1"
    try:
        with running_control_plane(
            keep=keep,
            say=lambda m: _say(pytestconfig, m),
            tools=tools if isinstance(tools, Toolset) else None,
        ) as cp:
            yield cp
    except TierError as exc:
        pytest.fail(f"control-plane tier failed to start: {exc}", pytrace=False)


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test; deletion is not awaited (the KCM finishes it)."""
    name = _namespace_name(request.node.name)
    control_plane.kubectl("create", "namespace", name, check=True)
    deadline = time.monotonic() + 30
    while control_plane.kubectl("get", "serviceaccount", "default", "-n", name).returncode:
        if time.monotonic() > deadline:
            pytest.fail(f"ServiceAccount default never appeared in {name}; is the KCM running?")
        time.sleep(0.2)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")

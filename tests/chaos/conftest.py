"""The chaos suite runs on the control-plane tier: the integration tier's fixtures, reused.

tests/integration/conftest.py is loaded under another module name (two modules called
`conftest` cannot both be imported) and its fixtures and build hook are re-exported here.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_INTEGRATION))
_spec = importlib.util.spec_from_file_location("integration_conftest", _INTEGRATION / "conftest.py")
assert _spec is not None
assert _spec.loader is not None
_tier = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tier)

from operator_fixture import CRD_FILE  # noqa: E402  (needs the path above)
from tf_controlplane import ControlPlane, node_manifest  # noqa: E402

control_plane = _tier.control_plane
namespace = _tier.namespace
pytest_collection_finish = _tier.pytest_collection_finish


@pytest.fixture(scope="module")
def chaos_tier(control_plane: ControlPlane) -> ControlPlane:
    """The CRD and room for 200 small pods (six more CPU nodes beside the tier's two)."""
    control_plane.kubectl("apply", "-f", str(CRD_FILE), check=True)
    deadline = time.monotonic() + 180  # a loaded machine: one 30 s wait was seen to fail
    while True:
        wait = control_plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/trainingjobs.trainforge.io",
            timeout=60,
        )
        if wait.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"the TrainingJob CRD was not Established: {wait.stderr}")
        time.sleep(2)
    for i in range(6):
        control_plane.apply(node_manifest(f"chaos-cpu-{i}", "cpu", 0))
    return control_plane

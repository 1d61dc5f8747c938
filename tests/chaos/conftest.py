"""The chaos suite runs on the control-plane tier: the integration tier's fixtures, reused.

tests/integration/conftest.py is loaded under another module name (two modules called
`conftest` cannot both be imported) and its fixtures and build hook are re-exported here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_INTEGRATION))
_spec = importlib.util.spec_from_file_location("integration_conftest", _INTEGRATION / "conftest.py")
assert _spec is not None
assert _spec.loader is not None
_tier = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tier)

control_plane = _tier.control_plane
namespace = _tier.namespace
pytest_collection_finish = _tier.pytest_collection_finish

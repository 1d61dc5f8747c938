"""Options shared by every test tier (pytest reads `pytest_addoption` only from the root conftest).

It also puts tests/ on sys.path (pytest inserts a rootless conftest's folder), so every tier can
import the shared `metric_names` module.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["cpu_report"]  # --cpu-durations=N (tests/cpu_report.py)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite tests/unit/golden/ from the code (then review the diff)",
    )


@pytest.fixture
def update_goldens(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--update-goldens"))

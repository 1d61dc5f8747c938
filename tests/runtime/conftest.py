"""Fixtures more than one runtime test module reads: each costs real processes, so it runs once
per session (per pytest-xdist worker)."""

from __future__ import annotations

from typing import Any

import pytest
from test_elastic import reference_run


@pytest.fixture(scope="session")
def elastic_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The elastic tests' digits job run uninterrupted in one process (test_elastic.py)."""
    return reference_run(tmp_path_factory.mktemp("elastic-reference"))

"""Fixtures for the chart tests: the helm binary and a renderer bound to it."""

from __future__ import annotations

import pytest
from helmrender import helm_binary


@pytest.fixture(scope="session")
def helm() -> str:
    return helm_binary()

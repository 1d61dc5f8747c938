"""Runtime tier: registers the `gpu` marker; GPU tests skip themselves without CUDA."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped otherwise)")

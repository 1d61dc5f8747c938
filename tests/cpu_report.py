"""`--cpu-durations=N`: the N tests that cost the most CPU-seconds (the test process and every
child it waited for, so real launcher runs and their ranks count), beside their wall time.

Wall time on a shared 2-core machine says more about the neighbours than about the test; CPU
seconds are steadier. Set-up and teardown count with the test (a module or session fixture is
charged to the test that first needs it, or that tears it down). Works under pytest-xdist: each
worker measures its own tests and the figures travel in the reports. ``--cpu-durations=0``
lists every test.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from typing import Any

import pytest

_START = pytest.StashKey[tuple[float, float]]()
_PROPERTY = "cpu_report"
_costs: list[tuple[float, float, str]] = []  # (cpu, wall, nodeid), where reports gather


def cpu_seconds() -> float:
    """User + system seconds of this process and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-durations",
        type=int,
        default=None,
        metavar="N",
        help="show the N tests that cost the most CPU-seconds (0: all), with their wall time",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_START] = (time.monotonic(), cpu_seconds())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report: pytest.TestReport = yield
    start = item.stash.get(_START, None)
    if call.when == "teardown" and start is not None:
        wall, cpu = time.monotonic() - start[0], cpu_seconds() - start[1]
        report.user_properties.append((_PROPERTY, (wall, cpu)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Runs where the reports are gathered (the xdist controller too)."""
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        if name == _PROPERTY:
            wall, cpu = value
            _costs.append((float(cpu), float(wall), report.nodeid))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    count = terminalreporter.config.getoption("--cpu-durations")
    if count is None:
        return
    costs = sorted(_costs, reverse=True)
    terminalreporter.write_sep("=", f"slowest {count or 'all'} by CPU-seconds")
    for cpu, wall, nodeid in costs[: count or None]:
        terminalreporter.write_line(f"{cpu:8.2f}s cpu {wall:8.2f}s wall  {nodeid}")
    total_cpu = sum(c[0] for c in costs)
    total_wall = sum(c[1] for c in costs)
    terminalreporter.write_line(
        f"total: {total_cpu:.1f} CPU-seconds, {total_wall:.1f} s wall in {len(costs)} tests"
    )

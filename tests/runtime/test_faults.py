"""TRAINFORGE_FAULT parsing and the real exit of a matching process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainforge_runtime.faults import FaultSpec, find_fault, parse_faults


def test_parse_several_specs_with_defaults() -> None:
    specs = parse_faults("rank=1,step=5,attempt=0,code=137; rank=0,step=3")
    assert specs == (FaultSpec(1, 5, 0, 137), FaultSpec(0, 3, 0, 137))


@pytest.mark.parametrize(
    "bad",
    [
        "rank=1",
        "rank=x,step=1",
        "rank=1,step=2,foo=3",
        "rank=1,step=1,code=300",
        "rank=0,step=1,pause=-1",
    ],
)
def test_parse_rejects_bad_specs(bad: str) -> None:
    with pytest.raises(ValueError, match="TRAINFORGE_FAULT"):
        parse_faults(bad)


def test_find_matches_rank_step_and_attempt_only() -> None:
    env = "rank=1,step=5,attempt=1,code=75"
    assert find_fault(1, 5, 1, env) == FaultSpec(1, 5, 1, 75)
    assert find_fault(1, 5, 0, env) is None
    assert find_fault(0, 5, 1, env) is None
    assert find_fault(1, 4, 1, env) is None
    assert find_fault(1, 5, 1, "") is None


def run_fault_loop(fault: str, rank: int, steps: int) -> subprocess.CompletedProcess[str]:
    """A process that calls maybe_inject_fault at every step under TRAINFORGE_FAULT=`fault`,
    printing each completed step and how long (whole seconds) the call took."""
    code = (
        "import time\n"
        "from trainforge_runtime.faults import maybe_inject_fault\n"
        f"for step in range({steps}):\n"
        "    t = time.monotonic()\n"
        f"    maybe_inject_fault(rank={rank}, step=step, attempt=0)\n"
        "    print(step, round(time.monotonic() - t), flush=True)\n"
    )
    env = {**os.environ, "TRAINFORGE_FAULT": fault}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_matching_process_exits_with_the_code() -> None:
    done = run_fault_loop("rank=1,step=3,attempt=0,code=137", rank=1, steps=10)
    assert done.returncode == 137
    assert done.stdout.split() == ["0", "0", "1", "0", "2", "0"]


def test_pause_stalls_the_matching_step_and_continues() -> None:
    proc = run_fault_loop("rank=0,step=2,pause=2", rank=0, steps=4)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0", "1", "0", "2", "2", "3", "0"]
    assert "pausing 2s" in proc.stderr

"""The standalone launcher's twins agree with the contract they copy, and it stays runnable on
the interpreter of a user's image: Python 3.9 grammar, standard library and trainforge_sdk only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from trainforge_api import exitcodes, termination
from trainforge_api.context import ENV_HP_FILE, ENV_HP_PREFIX
from trainforge_api.launchers import BOOT_DIR, INSTALL_COMMAND
from trainforge_launcher import BOOT_DIR as LAUNCHER_BOOT_DIR
from trainforge_launcher import contract, install, launch, podserver
from trainforge_runtime.progress import ProgressTracker

TRAINING_IMAGE = Path(__file__).resolve().parents[2] / "training_image"
PORTABLE = [
    *sorted((TRAINING_IMAGE / "trainforge_launcher").glob("*.py")),
    *sorted((TRAINING_IMAGE / "trainforge_sdk").glob("__init__.py")),
]


@pytest.mark.parametrize("path", PORTABLE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_runs_on_python_3_9_with_the_standard_library_only(path: Path) -> None:
    tree = ast.parse(path.read_text(), feature_version=(3, 9))
    allowed = set(sys.stdlib_module_names) | {"trainforge_launcher", "trainforge_sdk", "pynvml"}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_exit_codes_and_reasons_match_the_contract() -> None:
    assert exitcodes.REASONS == contract.REASONS
    for code in (0, 1, 64, 75, 126, 127, 137, 143, -9, 3):
        assert contract.reason_for(code) == exitcodes.reason_for(code)
        assert contract.normalize(code) == exitcodes.normalize(code)
    assert contract.PEER_FAILURE == exitcodes.PEER_FAILURE
    assert contract.PEER_FAILURE_MARKERS == exitcodes._PEER_FAILURE_MARKERS
    assert (contract.HP_PREFIX, contract.HP_FILE_ENV) == (ENV_HP_PREFIX, ENV_HP_FILE)
    assert BOOT_DIR == LAUNCHER_BOOT_DIR
    assert INSTALL_COMMAND[2] == "trainforge_launcher"


@pytest.mark.parametrize(
    ("summary", "code"),
    [
        ({"exitReason": "Succeeded", "step": 5, "totalSteps": 5, "metrics": {"loss": 0.5}}, 0),
        ({"exitReason": "Succeeded", "metrics": {"nan": float("nan")}}, 1),
        ({"exitReason": "UserError", "message": "rank 1 exited 1: " + "x" * 900}, 1),
        ({"exitReason": "PeerFailure", "message": "lost peer"}, 75),
        ({"exitReason": "Succeeded", "metrics": {f"m{i}": float(i) for i in range(400)}}, 0),
    ],
    ids=["results", "nan-and-failed", "long-message", "peer", "too-big"],
)
def test_termination_message_is_the_runtime_encoding(summary: dict[str, Any], code: int) -> None:
    """The operator decodes both the same way (the runtime trims a rank's message when it writes
    its summary, the standalone launcher when it encodes)."""
    ours = contract.encode_termination(summary, code)
    trimmed = {**summary, "message": summary.get("message", "")[: termination.MAX_MESSAGE_CHARS]}
    theirs = termination.encode(trimmed, code)
    if summary["exitReason"] != "PeerFailure":  # the runtime renames PeerFailure unless 75
        assert json.loads(ours) == json.loads(theirs)
    assert len(ours.encode()) <= termination.MAX_BYTES
    assert termination.decode(ours)["exitCode"] == code


def test_progress_keys_match_the_runtime(tmp_path: Path) -> None:
    server = podserver.PodServer("j", "ns", 0, range(0, 2), tmp_path, attempt=1)
    unreported = server.progress()
    assert unreported.keys() == ProgressTracker().snapshot().keys()
    assert unreported["phase"] == "unreported"


class _Done:
    def __init__(self, code: int) -> None:
        self.returncode = code


def _rank(rank: int, code: int, *stderr: str) -> launch.Rank:
    r = launch.Rank(rank, _Done(code))  # type: ignore[arg-type]
    r.tail = deque(stderr)
    return r


@pytest.mark.parametrize(
    ("failed", "expected"),
    [
        ([_rank(0, 1, "[rank0]: RuntimeError: boom\n")], (1, "UserError", "RuntimeError: boom")),
        (
            [
                _rank(0, 1, "RuntimeError: Connection closed by peer [10.0.0.2]:1"),
                _rank(1, 1, "[rank1]: ValueError: bad shape"),
            ],
            (1, "UserError", "rank 1 exited 1: ValueError: bad shape"),
        ),
        (
            [_rank(2, 1, "RuntimeError: gloo/transport/tcp: Connection reset by peer")],
            (75, "PeerFailure", "rank 2 exited 1"),
        ),
        ([_rank(0, -9), _rank(1, 127, "x: not found")], (127, "CommandNotFound", "rank 1")),
        ([_rank(3, -11)], (139, "Signal11", "rank 3 exited 139")),
    ],
    ids=["user-error", "cause-before-fallout", "only-fallout", "permanent-first", "signal"],
)
def test_the_root_cause_is_chosen(
    failed: list[launch.Rank], expected: tuple[int, str, str]
) -> None:
    outcome = launch.pick(failed)
    assert (outcome.code, outcome.reason) == expected[:2]
    assert expected[2] in outcome.message


def test_each_rank_gets_torchruns_env() -> None:
    node = launch.Node(1, 2, 2, "m.svc", 29500, 0)
    env = launch.rank_env({"PYTHONPATH": "/app"}, node, 1, "run-1", {"TRAINFORGE_HP_LR": "0.1"})
    want = {
        "RANK": "3",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "4",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1",
        "MASTER_ADDR": "m.svc",
        "MASTER_PORT": "29500",
        "TORCHELASTIC_RUN_ID": "run-1",
        "TRAINFORGE_HP_LR": "0.1",
        "PYTHONUNBUFFERED": "1",
    }
    assert want.items() <= env.items()
    assert env["PYTHONPATH"] == f"/app:{TRAINING_IMAGE}"  # the user's first, then the SDK's


def test_install_copies_a_runnable_launcher(tmp_path: Path) -> None:
    installed = install.install(tmp_path / "boot")
    assert installed[:2] == ["trainforge_launcher", "trainforge_sdk"]
    files = {p.relative_to(tmp_path / "boot").as_posix() for p in (tmp_path / "boot").rglob("*")}
    assert {"__main__.py", "trainforge_launcher/launch.py", "trainforge_sdk/__init__.py"} <= files
    assert not [f for f in files if "__pycache__" in f]
    # `python3 DIR` with no context: the launcher itself starts, and fails with exit 64.
    proc = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "boot")],
        env={
            "TRAINFORGE_CONTEXT": str(tmp_path / "missing.json"),
            "TRAINFORGE_TERMINATION_LOG": str(tmp_path / "term"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 64, proc.stderr
    assert json.loads((tmp_path / "term").read_text())["exitReason"] == "InvalidContext"

"""Test helpers: run the real launcher (torch elastic agent + gloo workers) on this machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_range(n: int) -> int:
    """A base port with n consecutive free ports (metrics use base + local_rank)."""
    for _ in range(50):
        base = free_port()
        try:
            socks = []
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def make_context(
    name: str = "t",
    command: list[str] | None = None,
    layout: str = "data",
    nproc: int = 2,
    hyperparameters: dict[str, Any] | None = None,
    metrics_port: int = 0,
    **parallelism: Any,
) -> dict[str, Any]:
    return {
        "job": {"name": name, "namespace": "test"},
        "command": command or ["python", "-m", "trainforge_runtime.trainers.gpt"],
        "hyperparameters": hyperparameters or {},
        "parallelism": {"layout": layout, "nodes": 1, "procsPerNode": nproc, **parallelism},
        "metrics": {"enabled": True, "port": metrics_port},
    }


@dataclass
class LaunchResult:
    proc: subprocess.CompletedProcess[str]
    run_dir: Path
    termination: dict[str, Any] | None

    @property
    def code(self) -> int:
        return self.proc.returncode

    def losses(self) -> list[float]:
        return list(json.loads((self.run_dir / "artifacts" / "losses.json").read_text()))


def launcher_env(context: dict[str, Any], tmp: Path, **extra: str) -> dict[str, str]:
    ctx_file = tmp / "context.json"
    ctx_file.write_text(json.dumps(context))
    par = context["parallelism"]
    env = dict(os.environ)
    env.update(
        {
            "TRAINFORGE_CONTEXT": str(ctx_file),
            "NODE_RANK": "0",
            "NNODES": str(par.get("nodes", 1)),
            "NPROC_PER_NODE": str(par.get("procsPerNode", 1)),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
            "TRAINFORGE_RUN_DIR": str(tmp / "run"),
            "TRAINFORGE_TERMINATION_LOG": str(tmp / "termination.json"),
            "OMP_NUM_THREADS": "1",
            # this checkout's runtime and contract package, not the venv's editable install
            "PYTHONPATH": os.pathsep.join([str(REPO / "training_image"), str(REPO / "api")]),
        }
    )
    env.update(extra)
    return env


def run_launcher(
    context: dict[str, Any], tmp: Path, timeout: int = 600, **env: str
) -> LaunchResult:
    """Run `python -m trainforge_runtime.launch` to completion under `nice`."""
    proc = subprocess.run(
        ["nice", "-n", "5", sys.executable, "-m", "trainforge_runtime.launch"],
        env=launcher_env(context, tmp, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    term_path = tmp / "termination.json"
    term = json.loads(term_path.read_text()) if term_path.exists() else None
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-8000:], sep="\n")
    return LaunchResult(proc, tmp / "run", term)

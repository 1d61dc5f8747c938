"""The standalone launcher's main loop: one pod's `procsPerNode` ranks of the job's command.

What the runtime launcher (`trainforge_runtime.launch`) does through torch's elastic agent, done
here with `subprocess` so that nothing but the standard library is needed and any torch version
works: each local rank gets torchrun's env (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
GROUP_RANK, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_*), and the ranks of all pods meet in the
script's own `init_process_group()` (env://, on node 0's MASTER_ADDR:MASTER_PORT). Every output
line is prefixed `[node<i>/rank<r>]: ` and also kept unprefixed per rank. When one rank fails the
others get SIGTERM (SIGKILL after KILL_GRACE_S); a SIGTERM to the launcher (pod deletion) is
forwarded to every rank. The exit code and the termination message follow the runtime's rules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trainforge_launcher.contract import (
    COMMAND_NOT_EXECUTABLE,
    COMMAND_NOT_FOUND,
    HP_FILE_NAME,
    INVALID_CONTEXT,
    PEER_FAILURE,
    PERMANENT_FIRST,
    SIGTERM_EXIT,
    SUCCESS,
    TRANSIENT,
    USER_ERROR,
    LaunchError,
    encode_termination,
    hp_channels,
    is_peer_failure_text,
    normalize,
    reason_for,
    strict_dumps,
)
from trainforge_launcher.podserver import PodServer, sdk_summary
from trainforge_sdk import PROGRESS_FILE

log = logging.getLogger("trainforge.launch")

# The pod contract (trainforge_api.context and trainforge_runtime.config).
ENV_CONTEXT = "TRAINFORGE_CONTEXT"
CONTEXT_PATH = "/etc/trainforge/context.json"
ENV_ATTEMPT = "TRAINFORGE_ATTEMPT"
ENV_RUN_DIR = "TRAINFORGE_RUN_DIR"
ENV_METRICS_PORT = "TRAINFORGE_METRICS_PORT"
ENV_TERMINATION_LOG = "TRAINFORGE_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
DEFAULT_RUN_DIR = "/tmp/trainforge-run"  # noqa: S108 - per-pod scratch, the pod owns /tmp
KILL_GRACE_S = 30.0
TAIL_LINES = 20
TORCH_PREFIX = re.compile(r"^\[rank\d+\]:\s*")


def load_context(path: Path | None = None) -> dict[str, Any]:
    """The job context JSON the operator rendered (already validated by it): as a dict."""
    path = path or Path(os.environ.get(ENV_CONTEXT) or CONTEXT_PATH)
    try:
        ctx = json.loads(path.read_text())
    except FileNotFoundError:
        raise LaunchError(
            INVALID_CONTEXT,
            f"job context file {path} not found: mount the <job>-context ConfigMap there or "
            f"point {ENV_CONTEXT} at a context JSON file",
        ) from None
    except ValueError as exc:
        raise LaunchError(INVALID_CONTEXT, f"job context file {path} is not JSON: {exc}") from None
    command = ctx.get("command") if isinstance(ctx, dict) else None
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise LaunchError(INVALID_CONTEXT, f"job context file {path}: command must be a list")
    return dict(ctx)


def _env_int(names: tuple[str, ...], default: int) -> int:
    for key in names:
        value = os.environ.get(key)
        if value not in (None, ""):
            try:
                return int(str(value))
            except ValueError:
                raise LaunchError(
                    INVALID_CONTEXT, f"env {key}={value!r} is not an integer"
                ) from None
    return default


@dataclass(frozen=True)
class Node:
    """What the launcher needs from the pod env (set by the operator or by local mode)."""

    node_rank: int
    nnodes: int
    nproc_per_node: int
    master_addr: str
    master_port: int
    attempt: int

    @classmethod
    def from_env(cls, ctx: dict[str, Any]) -> Node:
        """Env wins over the context, so one ConfigMap serves every pod and attempt."""
        par = ctx.get("parallelism") or {}
        rdzv = ctx.get("rendezvous") or {}
        node = cls(
            node_rank=_env_int(("NODE_RANK", "PET_NODE_RANK"), 0),
            nnodes=_env_int(("NNODES", "PET_NNODES"), int(par.get("nodes", 1))),
            nproc_per_node=_env_int(
                ("NPROC_PER_NODE", "PET_NPROC_PER_NODE"), int(par.get("procsPerNode", 1))
            ),
            master_addr=os.environ.get("MASTER_ADDR")
            or os.environ.get("PET_MASTER_ADDR")
            or str(rdzv.get("masterAddr", "127.0.0.1")),
            master_port=_env_int(
                ("MASTER_PORT", "PET_MASTER_PORT"), int(rdzv.get("masterPort", 29500))
            ),
            attempt=_env_int((ENV_ATTEMPT,), 0),
        )
        if not 0 <= node.node_rank < node.nnodes or node.nproc_per_node < 1:
            raise LaunchError(
                INVALID_CONTEXT,
                f"NODE_RANK={node.node_rank} NNODES={node.nnodes} "
                f"NPROC_PER_NODE={node.nproc_per_node} do not describe a gang: check the pod env",
            )
        return node

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def global_ranks(self) -> range:
        first = self.node_rank * self.nproc_per_node
        return range(first, first + self.nproc_per_node)


def check_gang(ctx: dict[str, Any], node: Node) -> None:
    """The env must describe the same gang as the context, or the ranks would never meet. The
    context's nodes of an elastic job is its desired size, which may change under a running pod
    (the operator then recreates this launcher's fixed world at the new size): NNODES only has
    to lie within [minNodes, maxNodes] there."""
    par = ctx.get("parallelism") or {}
    nodes = int(par.get("nodes", node.nnodes))
    low, high = int(par.get("minNodes") or nodes), int(par.get("maxNodes") or nodes)
    procs = par.get("procsPerNode", node.nproc_per_node)
    elastic = low < high
    fits = low <= node.nnodes <= high if elastic else node.nnodes == nodes
    if not fits or procs != node.nproc_per_node:
        said = f"minNodes={low} maxNodes={high}" if elastic else f"nodes={nodes}"
        raise LaunchError(
            INVALID_CONTEXT,
            f"env says NNODES={node.nnodes} NPROC_PER_NODE={node.nproc_per_node} but the "
            f"context says {said} procsPerNode={procs}: recreate the job so both "
            "come from the same spec",
        )


def build_command(ctx: dict[str, Any]) -> tuple[str, list[str]]:
    """The program each local rank runs; a bare `python` or `python3` is this interpreter."""
    argv = [*ctx["command"], *(ctx.get("args") or [])]
    program = sys.executable if argv[0] in ("python", "python3") else argv[0]
    return program, [str(a) for a in argv[1:]]


def unstartable(program: str) -> LaunchError | None:
    """Why `program` cannot be started (missing, not executable), else None: permanent, since
    the same image fails the same way on every retry."""
    path = program if os.sep in program else shutil.which(program)
    if path is None or not os.path.exists(path):
        where = "" if os.sep in program else " on PATH"
        return LaunchError(
            COMMAND_NOT_FOUND,
            f"spec.command: {program!r} not found{where} in the worker image; install it in the "
            "image, or fix spec.command (for a script: [python, path/to/train.py])",
        )
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        return LaunchError(
            COMMAND_NOT_EXECUTABLE,
            f"spec.command: {program!r} ({path}) is not an executable file; chmod +x it, or run "
            "it through its interpreter, for example [python, script.py] or [bash, script.sh]",
        )
    return None


def boot_dir() -> str:
    """The directory holding this package (and trainforge_sdk): the ranks get it on PYTHONPATH,
    so a script may `import trainforge_sdk` in an image that never installed it."""
    return str(Path(__file__).resolve().parent.parent)


def rank_env(
    base: dict[str, str], node: Node, local_rank: int, run_id: str, extra: dict[str, str]
) -> dict[str, str]:
    """One rank's env: the pod's, the hyperparameters, and torchrun's rank variables."""
    env = {"PYTHONUNBUFFERED": "1", **base, **extra}  # lines reach the pod log as printed
    rank = node.node_rank * node.nproc_per_node + local_rank
    env.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(local_rank),
            "WORLD_SIZE": str(node.world_size),
            "LOCAL_WORLD_SIZE": str(node.nproc_per_node),
            "GROUP_RANK": str(node.node_rank),
            "GROUP_WORLD_SIZE": str(node.nnodes),
            "ROLE_RANK": str(rank),
            "ROLE_WORLD_SIZE": str(node.world_size),
            "ROLE_NAME": "trainer",
            "NODE_RANK": str(node.node_rank),
            "NNODES": str(node.nnodes),
            "MASTER_ADDR": node.master_addr,
            "MASTER_PORT": str(node.master_port),
            "TORCHELASTIC_RUN_ID": run_id,
            "TORCHELASTIC_RESTART_COUNT": "0",
            "TORCHELASTIC_MAX_RESTARTS": "0",
        }
    )
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if boot_dir() not in paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, boot_dir()])
    return env


@dataclass
class Rank:
    """One local rank: its process, where its output goes, and the tail kept for the reason."""

    rank: int
    proc: subprocess.Popen[bytes]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    pumps: list[threading.Thread] = field(default_factory=list)

    def last_error_line(self) -> str:
        """The last line the rank printed on stderr, without torch's own `[rankN]: ` prefix."""
        lines = [line for line in self.tail if line.strip()]
        return TORCH_PREFIX.sub("", lines[-1].strip()) if lines else ""


_out_lock = threading.Lock()


def _pump(
    src: IO[bytes], dst: IO[bytes], prefix: bytes, keep: Path, tail: deque[str] | None
) -> None:
    """Copy a rank's stream line by line: prefixed to the launcher's, unprefixed to its file."""
    with keep.open("ab") as own:
        for raw in iter(src.readline, b""):
            own.write(raw)
            own.flush()
            if tail is not None:
                tail.append(raw.decode(errors="replace"))
            with _out_lock:
                dst.write(prefix + (raw if raw.endswith(b"\n") else raw + b"\n"))
                dst.flush()


def start_rank(
    program: str, args: list[str], env: dict[str, str], node: Node, local: int, logs: Path
) -> Rank:
    rank = node.node_rank * node.nproc_per_node + local
    proc = subprocess.Popen(
        [program, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    started = Rank(rank, proc)
    prefix = f"[node{node.node_rank}/rank{rank}]: ".encode()
    logs.mkdir(parents=True, exist_ok=True)
    assert proc.stdout is not None
    assert proc.stderr is not None
    for src, dst, name, tail in (
        (proc.stdout, sys.stdout.buffer, "stdout", None),
        (proc.stderr, sys.stderr.buffer, "stderr", started.tail),
    ):
        keep = logs / f"rank-{rank}.{name}.log"
        pump = threading.Thread(target=_pump, args=(src, dst, prefix, keep, tail), daemon=True)
        pump.start()
        started.pumps.append(pump)
    return started


@dataclass
class Outcome:
    code: int
    reason: str = ""
    message: str = ""


def pick(failed: list[Rank]) -> Outcome:
    """Root cause among the ranks that failed on their own. A rank whose error says it only lost
    a peer (gloo/NCCL) is fallout: the others come first, and if every failed rank is fallout the
    pod exits 75 (PeerFailure, retryable) so the operator looks for the peer that failed. Among
    the causes a permanent code wins, then a user error, then the lowest rank."""
    if not failed:
        return Outcome(SUCCESS)
    ordered = sorted(failed, key=lambda r: r.rank)
    causes = [r for r in ordered if not is_peer_failure_text("".join(r.tail))]
    codes = {r.rank: normalize(int(r.proc.returncode)) for r in ordered}
    chosen = next((r for p in PERMANENT_FIRST for r in causes if codes[r.rank] == p), None)
    chosen = chosen or next((r for r in causes if codes[r.rank] == USER_ERROR), None)
    chosen = chosen or (causes or ordered)[0]
    code, line = codes[chosen.rank], chosen.last_error_line()
    message = f"rank {chosen.rank} exited {code}" + (f": {line}" if line else "")
    if not causes:
        return Outcome(TRANSIENT, PEER_FAILURE, message)
    return Outcome(code, reason_for(code), message)


class Supervisor:
    """Waits for the ranks; stops the others when one fails or when the pod is deleted."""

    def __init__(self, ranks: list[Rank]) -> None:
        self.ranks = ranks
        self.signalled: int | None = None

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signalled = signum
        self._send(signal.SIGTERM)

    def _send(self, sig: int) -> None:
        for r in self.ranks:
            if r.proc.poll() is None:
                with contextlib.suppress(OSError):  # it exited meanwhile
                    r.proc.send_signal(sig)

    def wait(self, poll_s: float = 0.1) -> Outcome:
        failed: list[Rank] = []
        deadline: float | None = None
        while any(r.proc.poll() is None for r in self.ranks):
            if deadline is None and self.signalled is None:
                failed = [r for r in self.ranks if r.proc.returncode not in (None, 0)]
                if failed:
                    log.error("rank(s) %s failed; stopping the others", [r.rank for r in failed])
                    self._send(signal.SIGTERM)
                    deadline = time.monotonic() + KILL_GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                self._send(signal.SIGKILL)
            time.sleep(poll_s)
        if deadline is None and self.signalled is None:
            failed = [r for r in self.ranks if r.proc.returncode != 0]
        for r in self.ranks:
            for pump in r.pumps:
                pump.join(timeout=5)
        if self.signalled is not None and not failed:
            log.warning("launcher got signal %d: the ranks were told to stop", self.signalled)
            return Outcome(
                SIGTERM_EXIT if self.signalled == signal.SIGTERM else 128 + self.signalled
            )
        return pick(failed)


def prepare_run_dir(job: str) -> Path:
    """The per-attempt directory the ranks share (hyperparameter file, SDK reports, logs)."""
    base = os.environ.get(ENV_RUN_DIR)
    run_dir = Path(base) if base else Path(DEFAULT_RUN_DIR) / f"{job}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_RUN_DIR] = str(run_dir)
    return run_dir


def write_termination_log(summary: dict[str, Any], code: int) -> None:
    """Best effort: outside Kubernetes the path usually is not writable, and that is fine."""
    path = Path(os.environ.get(ENV_TERMINATION_LOG, DEFAULT_TERMINATION_LOG))
    try:
        path.write_text(encode_termination(summary, code))
    except OSError:
        log.debug("termination log %s not writable; skipped", path)


def fail_before_start(exc: LaunchError) -> int:
    print(f"trainforge-launch: {exc.message}", file=sys.stderr, flush=True)
    write_termination_log({"exitReason": reason_for(exc.code), "message": exc.message}, exc.code)
    return exc.code


def start_pod_server(ctx: dict[str, Any], node: Node, run_dir: Path) -> PodServer | None:
    """The pod's `/metrics` and `/progress` on spec.metrics.port; a busy port turns it off."""
    metrics = ctx.get("metrics") or {}
    if not metrics.get("enabled", True):
        return None
    job = ctx.get("job") or {}
    server = PodServer(
        str(job.get("name", "")),
        str(job.get("namespace", "default")),
        node.node_rank,
        node.global_ranks,
        run_dir,
        node.attempt,
    )
    base = _env_int((ENV_METRICS_PORT,), int(metrics.get("port", 9400)))
    try:
        port = server.start(base)
    except OSError as exc:
        log.warning("pod metrics endpoint could not bind port %d (%s); it is off", base, exc)
        return None
    os.environ[ENV_METRICS_PORT] = str(port + 1) if base else "0"
    log.info("pod /metrics and /progress on port %d", port)
    return server


def run(ctx: dict[str, Any], node: Node, program: str, args: list[str]) -> int:
    """Start the ranks, wait for them, write the termination message; return the exit code."""
    job = ctx.get("job") or {}
    run_dir = prepare_run_dir(str(job.get("name") or "job"))
    if 0 in node.global_ranks:  # a reused run directory (local --resume): no stale reports
        (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
    hp_file = run_dir / HP_FILE_NAME
    hps = ctx.get("hyperparameters") or {}
    hp_file.write_text(strict_dumps(hps, indent=2))
    channels = list(ctx.get("hyperparametersAs") or ["env", "file"])
    hp_env, hp_args = hp_channels(hps, channels, str(hp_file))
    server = start_pod_server(ctx, node, run_dir)
    run_id = str(job.get("uid") or f"{job.get('namespace', 'default')}-{job.get('name', 'job')}")
    base = dict(os.environ)
    supervisor = Supervisor([])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.on_signal)
    for local in range(node.nproc_per_node):
        env = rank_env(base, node, local, run_id, hp_env)
        logs = run_dir / "rank-logs"
        supervisor.ranks.append(start_rank(program, [*args, *hp_args], env, node, local, logs))
    outcome = supervisor.wait()
    summary = {**sdk_summary(run_dir), "exitReason": outcome.reason or reason_for(outcome.code)}
    if outcome.message:
        summary["message"] = outcome.message
    write_termination_log(summary, outcome.code)
    log.info("launcher exiting with %d (%s)", outcome.code, summary["exitReason"])
    if server is not None:
        server.set_exit(outcome.code)
        linger = int((ctx.get("metrics") or {}).get("lingerSeconds", 0))
        if linger:
            log.info("serving final metrics for %ds (metrics.lingerSeconds)", linger)
            time.sleep(linger)
        server.stop()
    return outcome.code


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher %(levelname)s %(message)s")
    try:
        ctx = load_context()
        node = Node.from_env(ctx)
        check_gang(ctx, node)
        program, args = build_command(ctx)
        problem = unstartable(program)
        if problem is not None:
            raise problem
    except LaunchError as exc:
        return fail_before_start(exc)
    log.info(
        "standalone launcher, python %s: node %d/%d, %d local procs, world %d, attempt %d",
        sys.version.split()[0],
        node.node_rank,
        node.nnodes,
        node.nproc_per_node,
        node.world_size,
        node.attempt,
    )
    try:
        return run(ctx, node, program, args)
    except (FileNotFoundError, PermissionError) as exc:  # lost a race with the check above
        code = COMMAND_NOT_FOUND if isinstance(exc, FileNotFoundError) else COMMAND_NOT_EXECUTABLE
        return fail_before_start(
            LaunchError(code, f"spec.command: {program!r} cannot be started: {exc}")
        )

"""Load and validate the job context plus the per-process env contract.

Every check here fails fast with exit 64 and a message that says what to change, because a bad
context can never succeed on retry.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from trainforge_api.context import (
    CONTEXT_PATH,
    ENV_ATTEMPT,
    ENV_CONTEXT_FILE,
    JobContext,
    context_problems,
)
from trainforge_api.exitcodes import InvalidContextError

ENV_RUN_DIR = "TRAINFORGE_RUN_DIR"  # where workers write summaries and the artifacts directory
ENV_METRICS_PORT = "TRAINFORGE_METRICS_PORT"  # overrides metrics.port (local mode: one per node)
ENV_TERMINATION_LOG = "TRAINFORGE_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
DEFAULT_RUN_DIR = "/tmp/trainforge-run"  # noqa: S108 - per-pod scratch, the pod owns /tmp


def context_path() -> Path:
    """The context file: `TRAINFORGE_CONTEXT` or the ConfigMap mount path."""
    return Path(os.environ.get(ENV_CONTEXT_FILE, CONTEXT_PATH))


def load_context(path: Path | None = None) -> JobContext:
    """Read and validate the JobContext JSON; raise InvalidContextError with a fix-it message."""
    path = path or context_path()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidContextError(
            f"job context file {path} not found: mount the <job>-context ConfigMap there "
            f"or point {ENV_CONTEXT_FILE} at a context JSON file"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidContextError(f"job context file {path} is not valid JSON: {exc}") from None
    try:
        ctx = JobContext.model_validate(raw)
    except ValidationError as exc:
        raise InvalidContextError(f"job context file {path} is invalid: {exc}") from None
    validate_context(ctx)
    return ctx


def validate_context(ctx: JobContext) -> None:
    """The job's cross-field rules (the same table the API server and the operator check), so a
    context that could only fail inside torch is rejected before any process starts."""
    problems = context_problems(ctx)
    if problems:
        raise InvalidContextError("; ".join(problems))


def env_int(name: str, default: int, *alts: str) -> int:
    """The first of `name` and `alts` set in env, as an int; a non-number fails with exit 64."""
    for key in (name, *alts):
        value = os.environ.get(key)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise InvalidContextError(f"env {key}={value!r} is not an integer") from None
    return default


def free_port() -> int:
    """A port nothing listens on now: rendezvous for runs started without MASTER_PORT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class NodeEnv:
    """What the launcher needs from the pod env (set by the operator or by local mode)."""

    node_rank: int
    nnodes: int
    nproc_per_node: int
    master_addr: str
    master_port: int
    attempt: int

    @classmethod
    def from_env(cls, ctx: JobContext) -> NodeEnv:
        """Env wins over the context so one ConfigMap serves every pod and attempt."""
        par = ctx.parallelism
        env = cls(
            node_rank=env_int("NODE_RANK", 0, "PET_NODE_RANK"),
            nnodes=env_int("NNODES", par.nodes, "PET_NNODES"),
            nproc_per_node=env_int("NPROC_PER_NODE", par.procs_per_node, "PET_NPROC_PER_NODE"),
            master_addr=os.environ.get("MASTER_ADDR")
            or os.environ.get("PET_MASTER_ADDR")
            or ctx.rendezvous.master_addr,
            master_port=env_int("MASTER_PORT", ctx.rendezvous.master_port, "PET_MASTER_PORT"),
            attempt=env_int(ENV_ATTEMPT, 0),
        )
        env.check(ctx)
        return env

    @property
    def global_ranks(self) -> range:
        """The global ranks of this pod's local processes; on node 0 the first is rank 0."""
        first = self.node_rank * self.nproc_per_node
        return range(first, first + self.nproc_per_node)

    def check(self, ctx: JobContext) -> None:
        """The env must describe the same gang as the context, or ranks would never meet. An
        elastic job resizes under running pods (the context's `nodes` is the desired size, and
        a pod's env says the size when it was created): there NNODES only has to lie within
        [minNodes, maxNodes] and NODE_RANK below maxNodes; the rendezvous sets the world."""
        par = ctx.parallelism
        if par.elastic:
            nodes_ok = par.min_size <= self.nnodes <= par.max_size
            said = f"minNodes={par.min_size} maxNodes={par.max_size}"
            ranks = par.max_size
        else:
            nodes_ok = self.nnodes == par.nodes
            said = f"nodes={par.nodes}"
            ranks = self.nnodes
        if not nodes_ok or self.nproc_per_node != par.procs_per_node:
            raise InvalidContextError(
                f"env says NNODES={self.nnodes} NPROC_PER_NODE={self.nproc_per_node} but the "
                f"context says {said} procsPerNode={par.procs_per_node}: "
                "recreate the job so both come from the same spec"
            )
        if not 0 <= self.node_rank < ranks:
            raise InvalidContextError(
                f"NODE_RANK={self.node_rank} is outside [0, {ranks}): check the pod env"
            )

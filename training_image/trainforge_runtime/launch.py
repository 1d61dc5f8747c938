"""The worker pod entrypoint: `python -m trainforge_runtime.launch` (console: trainforge-launch).

Reads the job context and the pod env, then runs `procsPerNode` local processes of the job's
command through torch's elastic agent. The context's rendezvous says how the nodes meet: `c10d`
(dynamic: node 0's agent hosts the rendezvous store on MASTER_ADDR:MASTER_PORT; between minNodes
and maxNodes nodes; when a member leaves or joins, the surviving agents restart their processes
in place, up to `rendezvous.maxRestarts` local failures, and re-rendezvous, and the processes
resume from the newest checkpoint), or `static` (a fixed gang, no restarts inside the pod: the
operator recreates the whole gang). The agent forwards SIGTERM to the
workers, which checkpoint and exit 143. On exit the launcher writes the termination message
(`TRAINFORGE_TERMINATION_LOG`, default /dev/termination-log) from the lowest local rank's summary,
which on node 0 is global rank 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from trainforge_api import exitcodes, termination
from trainforge_api.context import JobContext
from trainforge_runtime.config import (
    DEFAULT_RUN_DIR,
    DEFAULT_TERMINATION_LOG,
    ENV_METRICS_PORT,
    ENV_RUN_DIR,
    ENV_TERMINATION_LOG,
    NodeEnv,
    env_int,
    load_context,
)
from trainforge_runtime.hyperparameters import hp_channels
from trainforge_runtime.podserver import PodServer, clear_stale, sdk_summary
from trainforge_runtime.summary import clear_summaries, read_first_summary

log = logging.getLogger("trainforge.launch")

RDZV_TIMEOUT_S = int(os.environ.get("TRAINFORGE_RDZV_TIMEOUT", "900"))
# c10d: once minNodes are in, how long a round waits for more nodes before it starts training.
RDZV_LAST_CALL_S = int(os.environ.get("TRAINFORGE_RDZV_LAST_CALL", "5"))
# c10d: a member whose agent missed heartbeats this long (interval x attempts) is dropped.
RDZV_KEEP_ALIVE_S = 2
RDZV_KEEP_ALIVE_ATTEMPTS = 3
ENV_NO_SHARED_STORE = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
PERMANENT_FIRST = (
    exitcodes.INVALID_CONTEXT,
    exitcodes.COMMAND_NOT_FOUND,
    exitcodes.COMMAND_NOT_EXECUTABLE,
    exitcodes.HEALTH_STOP,
    exitcodes.UPLOAD_FAILED,
)


def build_command(ctx: JobContext) -> tuple[str, list[str]]:
    """The program each local rank runs; a bare `python` means this interpreter."""
    argv = [*ctx.command, *ctx.args]
    program = sys.executable if argv[0] in ("python", "python3") else argv[0]
    return program, argv[1:]


def unstartable(program: str) -> exitcodes.RuntimeExit | None:
    """Why `program` cannot be started (missing, or not executable), else None. Checked before
    any rank starts: the same image fails the same way on every retry, so it is permanent."""
    path = program if os.sep in program else shutil.which(program)
    if path is None or not os.path.exists(path):
        where = "" if os.sep in program else " on PATH"
        return exitcodes.RuntimeExit(
            exitcodes.COMMAND_NOT_FOUND,
            f"spec.command: {program!r} not found{where} in the worker image; install it in the "
            "image, or fix spec.command (for a script: [python, path/to/train.py])",
        )
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        return exitcodes.RuntimeExit(
            exitcodes.COMMAND_NOT_EXECUTABLE,
            f"spec.command: {program!r} ({path}) is not an executable file; chmod +x it, or run "
            "it through its interpreter, for example [python, script.py] or [bash, script.sh]",
        )
    return None


def log_line_prefix(env: NodeEnv) -> str:
    """torchrun-style prefix for every line a rank prints, e.g. `[node0/rank1]: `; torch fills
    in `${rank}` (the global rank)."""
    return f"[node{env.node_rank}/rank${{rank}}]: "


def launch_config(ctx: JobContext, env: NodeEnv, run_id: str, log_dir: Path | None = None) -> Any:
    """Elastic LaunchConfig for the context's rendezvous (see the module docstring). Each rank's
    stdout and stderr go to a file under `log_dir` and are tee'd to the launcher's own, prefixed
    by rank."""
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, Std
    from torch.distributed.launcher.api import LaunchConfig

    common: dict[str, Any] = {
        "logs_specs": DefaultLogsSpecs(
            log_dir=None if log_dir is None else str(log_dir), tee=Std.ALL
        ),
        "log_line_prefix_template": log_line_prefix(env),
        "nproc_per_node": env.nproc_per_node,
        "run_id": run_id,
        "role": "trainer",
        "rdzv_endpoint": f"{env.master_addr}:{env.master_port}",
        "monitor_interval": 0.2,
        "start_method": "spawn",
    }
    rdzv = ctx.rendezvous
    if rdzv.backend == "static":
        return LaunchConfig(
            **common,
            min_nodes=env.nnodes,
            max_nodes=env.nnodes,
            rdzv_backend="static",
            rdzv_configs={"rank": env.node_rank, "timeout": RDZV_TIMEOUT_S},
            max_restarts=0,
        )
    # A fresh worker store each round: the shared one outlives rounds on node 0's agent, so
    # after a re-rendezvous a rank could read the gloo address a previous round's rank left.
    os.environ.setdefault(ENV_NO_SHARED_STORE, "1")
    par = ctx.parallelism
    return LaunchConfig(
        **common,
        min_nodes=par.min_size,
        max_nodes=par.max_size,
        rdzv_backend="c10d",
        rdzv_configs={
            "is_host": env.node_rank == 0,
            "join_timeout": RDZV_TIMEOUT_S,
            "read_timeout": RDZV_TIMEOUT_S,
            "last_call_timeout": RDZV_LAST_CALL_S,
            "keep_alive_interval": RDZV_KEEP_ALIVE_S,
            "keep_alive_max_attempt": RDZV_KEEP_ALIVE_ATTEMPTS,
        },
        local_addr=rendezvous_addr(env),
        max_restarts=rdzv.max_restarts,
    )


def rendezvous_addr(env: NodeEnv) -> str | None:
    """This node's address in the c10d rendezvous, which also orders the ranks (sorted by
    address): node 0 announces MASTER_ADDR, so it is always rank 0 (it hosts the store, so no
    round completes without it) and serves the workers' store where every pod can reach it. In
    a cluster the other pods use their own FQDN (`<job>-worker-<i>.<job>.<ns>.svc...`, sorting
    after node 0's); on one machine (local mode, tests) node i uses loopback 127.0.0.<i+1>."""
    if env.node_rank == 0:
        return env.master_addr
    if env.master_addr.startswith("127.") or env.master_addr == "localhost":
        return f"127.0.0.{min(env.node_rank + 1, 254)}"
    return None


def pick_exit_code(failures: dict[int, Any]) -> int:
    """Root cause among failed local ranks: a permanent code, then a user error, then a signal
    or other code; 75 last, because ranks whose peer died exit 75 (fallout, not a cause)."""
    codes = {rank: exitcodes.normalize(int(f.exitcode)) for rank, f in failures.items()}
    for preferred in PERMANENT_FIRST:
        if preferred in codes.values():
            return preferred
    ordered = [codes[r] for r in sorted(codes)]
    causes = [c for c in ordered if c != exitcodes.TRANSIENT]
    return next((c for c in ordered if c == exitcodes.USER_ERROR), (causes or ordered or [1])[0])


def rank_log_dir() -> Path | None:
    """Where each rank's own stdout/stderr files go: under the run directory when there is one."""
    base = os.environ.get(ENV_RUN_DIR)
    if not base:
        return None
    path = Path(base) / "rank-logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def no_restart_on_permanent_exit() -> None:
    """Make the elastic agent give up, instead of restarting the local processes in place, when
    a rank exits with a permanent code (PERMANENT_FIRST: invalid context, health stop, failed
    upload, command missing or not executable): the same processes would fail the same way, so
    up to `rendezvous.maxRestarts` reruns only delayed the pod's exit with that code. Other
    failures (a crash, a lost peer, a signal) are still restarted in place."""
    from torch.distributed.elastic.agent.server.api import RunResult, WorkerGroup
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
    from torch.distributed.launcher import api

    class PermanentAwareAgent(LocalElasticAgent):
        def _monitor_workers(self, worker_group: WorkerGroup) -> RunResult:
            result: RunResult = super()._monitor_workers(worker_group)
            codes = {exitcodes.normalize(int(f.exitcode)) for f in result.failures.values()}
            if result.is_failed() and codes & set(PERMANENT_FIRST) and self._remaining_restarts:
                log.error("a rank exited %s (permanent): no restart in place", sorted(codes))
                self._remaining_restarts = 0  # torch's own way to stop restarts (wedged ranks)
            return result

    # elastic_launch builds its agent from this module's name; a torch that moved it keeps the
    # plain agent (and a second call finds it already swapped)
    if vars(api).get("LocalElasticAgent") is LocalElasticAgent:
        vars(api)["LocalElasticAgent"] = PermanentAwareAgent


def run_agent(ctx: JobContext, env: NodeEnv, extra_args: list[str] | None = None) -> int:
    """Run the local gang with `extra_args` after the command's own; return the exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    no_restart_on_permanent_exit()
    program, args = build_command(ctx)
    args = [*args, *(extra_args or [])]
    run_id = ctx.job.uid or f"{ctx.job.namespace}-{ctx.job.name}"
    try:
        config = launch_config(ctx, env, run_id, log_dir=rank_log_dir())
        elastic_launch(config, program)(*args)
    except ChildFailedError as exc:
        return pick_exit_code(exc.failures)
    except SignalException as exc:
        log.warning("launcher got %s: workers were told to checkpoint and stop", exc.sigval)
        return 128 + int(exc.sigval)
    except (FileNotFoundError, PermissionError) as exc:  # lost a race with the check in main
        raise exitcodes.RuntimeExit(
            exitcodes.COMMAND_NOT_FOUND
            if isinstance(exc, FileNotFoundError)
            else exitcodes.COMMAND_NOT_EXECUTABLE,
            f"spec.command: {program!r} cannot be started: {exc}",
        ) from None
    except Exception as exc:  # rendezvous timeouts, lost peers: retry the gang
        log.error("launcher failed (%s: %s); exiting 75 (retryable)", type(exc).__name__, exc)
        return exitcodes.TRANSIENT
    return exitcodes.SUCCESS


def write_termination_log(text: str) -> None:
    """Best effort: outside Kubernetes the path usually is not writable, and that is fine."""
    path = Path(os.environ.get(ENV_TERMINATION_LOG, DEFAULT_TERMINATION_LOG))
    try:
        with path.open("w") as fh:
            fh.write(text)
    except OSError:
        log.debug("termination log %s not writable; skipped", path)


def prepare_run_dir(ctx: JobContext) -> Path:
    """A fresh per-attempt directory the workers share for summaries and artifacts."""
    base = os.environ.get(ENV_RUN_DIR)
    if base:
        run_dir = Path(base)
    else:
        root = Path(DEFAULT_RUN_DIR)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            root = Path(tempfile.gettempdir()) / "trainforge-run"
        run_dir = root / f"{ctx.job.name}-{uuid.uuid4().hex[:8]}"
        os.environ[ENV_RUN_DIR] = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_summaries(run_dir)
    return run_dir


def fail_before_start(exc: exitcodes.RuntimeExit) -> int:
    """No rank ran: say why on stderr and in the termination message, and exit with its code."""
    print(f"trainforge-launch: {exc.message}", file=sys.stderr, flush=True)
    summary = termination.rank_summary(exitcodes.reason_for(exc.code), message=exc.message)
    write_termination_log(termination.encode(summary, exc.code))
    return exc.code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and exits with) the code documented in docs/architecture.md."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher %(levelname)s %(message)s")
    try:
        ctx = load_context()
        env = NodeEnv.from_env(ctx)
        problem = unstartable(build_command(ctx)[0])
        if problem is not None:
            raise problem
    except exitcodes.RuntimeExit as exc:
        return fail_before_start(exc)
    run_dir = prepare_run_dir(ctx)
    log.info(
        "job %s/%s node %d/%d: %d local procs, layout %s, attempt %d",
        ctx.job.namespace,
        ctx.job.name,
        env.node_rank,
        env.nnodes,
        env.nproc_per_node,
        ctx.parallelism.layout,
        env.attempt,
    )
    clear_stale(run_dir, env.global_ranks)
    hp_env, hp_args = hp_channels(ctx, run_dir)
    os.environ.update(hp_env)  # the ranks inherit the launcher's env
    server = start_pod_server(ctx, env, run_dir)
    try:
        code = run_agent(ctx, env, hp_args)
    except exitcodes.RuntimeExit as exc:
        code = fail_before_start(exc)
        stop_pod_server(server, ctx, code, lingered=False)
        return code
    summary = read_first_summary(run_dir, env.global_ranks)
    if not summary:  # your own script (trainforge's trainers write rank summaries)
        code, summary = own_script_summary(ctx, env, run_dir, code)
    write_termination_log(termination.encode(summary, code))
    log.info("launcher exiting with %d (%s)", code, exitcodes.reason_for(code))
    stop_pod_server(server, ctx, code, lingered=bool(summary))
    return code


def own_script_summary(
    ctx: JobContext, env: NodeEnv, run_dir: Path, code: int
) -> tuple[int, dict[str, Any]]:
    """The exit code and termination summary of your own script: what it reported through
    trainforge_sdk, and, once every local rank of node 0 exited 0, the files it wrote to
    `artifacts_dir()` uploaded to `spec.artifacts.uri` as the shipped trainers' are (status
    .artifacts). A failed upload exits 66 (ArtifactUploadFailed) and publishes nothing."""
    if code != 0 or env.node_rank != 0 or not ctx.artifacts.uri:
        return code, sdk_summary(run_dir, code)
    folder = run_dir / "artifacts"
    if not folder.is_dir() or not any(path.is_file() for path in folder.rglob("*")):
        return code, sdk_summary(run_dir, code)
    from trainforge_runtime.bundle import upload  # fsspec and its backends: only when needed

    try:
        uploaded = upload(folder, ctx)
    except exitcodes.RuntimeExit as exc:
        log.error("%s", exc.message)
        return exc.code, sdk_summary(run_dir, exc.code, message=exc.message)
    log.info("uploaded artifacts_dir() to %s", ctx.artifacts.uri)
    return code, sdk_summary(run_dir, code, artifacts=uploaded)


def start_pod_server(ctx: JobContext, env: NodeEnv, run_dir: Path) -> PodServer | None:
    """Serve the pod's `/metrics` and `/progress` on the metrics port; the ranks' own servers
    move to the ports after it. A busy port only turns the pod's endpoint off."""
    if not ctx.metrics.enabled:
        return None
    base = env_int(ENV_METRICS_PORT, ctx.metrics.port)
    server = PodServer(
        ctx.job.name, ctx.job.namespace, env.node_rank, env.global_ranks, run_dir, env.attempt
    )
    try:
        port = server.start(base)
    except OSError as exc:
        log.warning("pod metrics endpoint could not bind port %d (%s); it is off", base, exc)
        return None
    os.environ[ENV_METRICS_PORT] = str(port + 1) if base else "0"
    log.info("pod /metrics and /progress on port %d", port)
    return server


def stop_pod_server(server: PodServer | None, ctx: JobContext, code: int, lingered: bool) -> None:
    """Export the exit classification, serve it for metrics.lingerSeconds unless the ranks
    already lingered with their own servers, then stop."""
    if server is None:
        return
    server.set_exit(code)
    if ctx.metrics.linger_seconds and not lingered:
        log.info(
            "serving final metrics for %ds (metrics.lingerSeconds)", ctx.metrics.linger_seconds
        )
        time.sleep(ctx.metrics.linger_seconds)
    server.stop()


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()

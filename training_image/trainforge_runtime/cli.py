"""`trainforge run JOB.yaml --local`: run a TrainingJob on this machine under the pod contract.

Local mode starts one launcher per node (`python -m trainforge_runtime.launch`, or the standalone
`trainforge_launcher` when the job's launcher resolves to standalone) with the same env
the operator sets in pods (NODE_RANK, NNODES, NPROC_PER_NODE, MASTER_ADDR/PORT, TRAINFORGE_*),
polls rank 0's `/progress` to print progress, and prints the termination summary at the end.
Every rank's output streams to the terminal as it happens, prefixed like torchrun's
(`[node0/rank1]: ...`; the launcher's own lines read `[node0]: ...`), and is kept per node in
`node-<i>.log`.
Node i's launcher serves the node's one `/metrics` (and `/progress`) on
`metrics.port + i*(procsPerNode+1)`, its ranks on the ports after it, so nothing collides.
Remote artifact and checkpoint URIs are redirected to `file://./trainforge-output/<job>/` unless
`--keep-uris` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import yaml

from trainforge_api import exitcodes
from trainforge_api.context import ENV_ATTEMPT, ENV_CONTEXT_FILE, ENV_POD_NAME, JobContext
from trainforge_runtime.config import (
    ENV_METRICS_PORT,
    ENV_RUN_DIR,
    ENV_TERMINATION_LOG,
    free_port,
    validate_context,
)
from trainforge_runtime.convert import convert_file
from trainforge_runtime.stage_data import stage_local


def load_manifest(path: Path) -> dict[str, Any]:
    """Read a TrainingJob YAML file (the first TrainingJob document in it)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise exitcodes.InvalidContextError(f"cannot read {path}: {exc}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "TrainingJob":
            return doc
    raise exitcodes.InvalidContextError(f"{path} holds no document with kind: TrainingJob")


def build_local_context(manifest: dict[str, Any], out_dir: Path, keep_uris: bool) -> JobContext:
    """The operator's converter, then local-mode overrides (rendezvous, output URIs)."""
    from trainforge_api.context import InvalidSpecError, job_context_from_manifest

    try:
        ctx = job_context_from_manifest(manifest)
    except InvalidSpecError as exc:
        raise exitcodes.InvalidContextError(f"invalid TrainingJob: {exc}") from None
    validate_context(ctx)
    ctx.rendezvous.master_addr = "127.0.0.1"
    ctx.rendezvous.master_port = free_port()
    ctx.metrics.linger_seconds = 0  # a local run prints its metrics; nothing scrapes after it
    if not keep_uris:
        ctx.artifacts.uri = (out_dir / "artifacts").resolve().as_uri() + "/"
        ctx.artifacts.s3_endpoint = None
        ctx.artifacts.credentials_secret = None
        if ctx.checkpoint.uri:
            ctx.checkpoint.uri = (out_dir / "checkpoints").resolve().as_uri() + "/"
    return ctx


def node_env(
    ctx: JobContext, node: int, out_dir: Path, metrics_base: int, spec_env: dict[str, str]
) -> dict[str, str]:
    """The env a worker pod of node rank `node` would get from the operator."""
    par = ctx.parallelism
    env = dict(os.environ)
    env.update(spec_env)
    env.update(
        {
            ENV_CONTEXT_FILE: str(out_dir / "context.json"),
            "NODE_RANK": str(node),
            "RANK": str(node),
            "NNODES": str(par.nodes),
            "NPROC_PER_NODE": str(par.procs_per_node),
            "WORLD_SIZE": str(par.world_size),
            "MASTER_ADDR": ctx.rendezvous.master_addr,
            "MASTER_PORT": str(ctx.rendezvous.master_port),
            ENV_ATTEMPT: "0",
            ENV_POD_NAME: f"{ctx.job.name}-worker-{node}",
            ENV_RUN_DIR: str(out_dir / "run"),
            ENV_TERMINATION_LOG: str(out_dir / f"termination-node{node}.json"),
            ENV_METRICS_PORT: str(metrics_base + node * (par.procs_per_node + 1)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def plain_env(manifest: dict[str, Any]) -> dict[str, str]:
    """spec.env entries with literal values (valueFrom needs a cluster and is skipped)."""
    out: dict[str, str] = {}
    for item in (manifest.get("spec") or {}).get("env") or []:
        if "value" in item:
            out[str(item["name"])] = str(item["value"])
        else:
            print(f"trainforge: env {item.get('name')} uses valueFrom; skipped in local mode")
    return out


def fetch_progress(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=1) as resp:
            return dict(json.loads(resp.read()))
    except (OSError, ValueError):
        return None


def format_progress(p: dict[str, Any]) -> str:
    pct = p.get("percent")
    head = f"[{pct:5.1f}%]" if pct is not None else "[  ?  ]"
    total = p.get("totalSteps") or "?"
    parts = [f"{head} step {p.get('step')}/{total} epoch {p.get('epoch')}", p.get("phase", "")]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        if key in p.get("metrics", {}):
            parts.append(f"{key} {p['metrics'][key]:.4f}")
    if p.get("etaSeconds") is not None:
        parts.append(f"eta {p['etaSeconds']:.0f}s")
    return "  ".join(str(x) for x in parts if x)


def run_local(
    path: Path,
    out_root: Path,
    keep_uris: bool,
    metrics_port: int | None,
    resume: bool = False,
    quiet: bool = False,
) -> int:
    manifest = load_manifest(path)
    name = str((manifest.get("metadata") or {}).get("name") or "job")
    out_dir = (out_root / name).resolve()
    if not resume and not keep_uris and (out_dir / "checkpoints").exists():
        shutil.rmtree(out_dir / "checkpoints")  # a new local run starts fresh unless --resume
    (out_dir / "run").mkdir(parents=True, exist_ok=True)
    ctx = build_local_context(manifest, out_dir, keep_uris)
    (out_dir / "context.json").write_text(ctx.to_json())
    base = metrics_port or (ctx.metrics.port if ctx.metrics.enabled else free_port())
    par = ctx.parallelism
    print(
        f"trainforge: running {name} locally: {par.nodes} node(s) x {par.procs_per_node} proc(s), "
        f"layout {par.layout}; progress on http://127.0.0.1:{base}/progress; output {out_dir}"
    )
    spec_env = plain_env(manifest) | stage_local(ctx.data, out_dir)
    launcher = local_launcher(manifest)
    procs, pumps = [], []
    for node in range(par.nodes):
        proc = subprocess.Popen(
            [sys.executable, "-m", launcher],
            env=node_env(ctx, node, out_dir, base, spec_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        pump = threading.Thread(
            target=stream_output,
            args=(proc, node, out_dir / f"node-{node}.log", None if quiet else sys.stdout),
            daemon=True,
        )
        pump.start()
        procs.append(proc)
        pumps.append(pump)
    codes = _watch(procs, base)
    for pump in pumps:
        pump.join(timeout=10)
    return _report(codes, out_dir)


def local_launcher(manifest: dict[str, Any]) -> str:
    """The launcher module a pod of this job would run (trainforge_api.launchers): the runtime's,
    or the standalone one for a job whose image has no trainforge. Local mode knows no operator
    worker image, so any `spec.image` counts as a foreign one."""
    from trainforge_api.context import parse_spec
    from trainforge_api.launchers import resolve_launcher

    standalone = resolve_launcher(parse_spec(manifest), default_image="") == "standalone"
    return "trainforge_launcher" if standalone else "trainforge_runtime.launch"


def stream_output(
    proc: subprocess.Popen[bytes], node: int, log_path: Path, console: TextIO | None
) -> None:
    """Copy a node launcher's output to its log file and, unless quiet, to the console. Rank
    lines already carry `[node<i>/rank<r>]: `; the launcher's own get `[node<i>]: `."""
    assert proc.stdout is not None
    own = f"[node{node}]: "
    rank = f"[node{node}/rank"
    with log_path.open("wb") as log_file:
        for raw in iter(proc.stdout.readline, b""):
            log_file.write(raw)
            log_file.flush()
            if console is not None:
                line = raw.decode(errors="replace")
                console.write(line if line.startswith(rank) else own + line)
                console.flush()


def _watch(procs: list[subprocess.Popen[bytes]], port: int) -> list[int]:
    """Print progress until every launcher exits; Ctrl-C sends SIGTERM like a pod deletion."""
    last_step = None
    try:
        while any(p.poll() is None for p in procs):
            progress = fetch_progress(port)
            if progress and progress.get("step") != last_step:
                last_step = progress.get("step")
                print(format_progress(progress), flush=True)
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
    return [int(p.returncode) for p in procs]


def _report(codes: list[int], out_dir: Path) -> int:
    failed = [c for c in codes if c != 0]
    code = failed[0] if failed else 0
    for preferred in (64, 127, 126, 65, 66, 1):
        if preferred in failed:
            code = preferred
            break
    term = out_dir / "termination-node0.json"
    summary = json.loads(term.read_text()) if term.exists() else {}
    print(f"trainforge: finished with exit code {code} ({exitcodes.reason_for(code)})")
    for key, value in (summary.get("metrics") or {}).items():
        print(f"  {key:<20} {value:.4f}" if isinstance(value, float) else f"  {key:<20} {value}")
    if summary.get("artifacts"):
        print(f"  artifacts: {json.dumps(summary['artifacts'])}")
    for finding in summary.get("findings") or []:
        print(f"  finding: {finding}")
    if summary.get("message"):
        print(f"  message: {summary['message']}")
    if code:
        print(f"  logs: {out_dir}/node-*.log")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainforge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a TrainingJob file")
    run.add_argument("file", type=Path)
    run.add_argument("--local", action="store_true", help="run on this machine (required for now)")
    run.add_argument("--output", type=Path, default=Path("trainforge-output"))
    run.add_argument("--keep-uris", action="store_true", help="keep remote artifact/ckpt URIs")
    run.add_argument("--metrics-port", type=int, default=None, help="base metrics port")
    run.add_argument("--resume", action="store_true", help="continue from local checkpoints")
    run.add_argument(
        "--quiet", action="store_true", help="print progress and the summary, not rank output"
    )
    convert = sub.add_parser("convert", help="print a Kubeflow PyTorchJob file as a TrainingJob")
    convert.add_argument("file", type=Path)
    sweep = sub.add_parser("sweep", help="run a TrainingSweep file (trials in parallel)")
    sweep.add_argument("file", type=Path)
    sweep.add_argument("--local", action="store_true", help="run on this machine (required)")
    sweep.add_argument("--output", type=Path, default=Path("trainforge-output"))
    sweep.add_argument("--parallel", type=int, default=None, help="trials at once (default: spec)")
    args = parser.parse_args(argv)
    if args.cmd == "convert":
        return convert_file(args.file)
    if args.cmd == "sweep":
        return _sweep(args)
    if not args.local:
        print("trainforge run: only --local is supported; use kubectl apply -f for clusters")
        return 2
    try:
        code = run_local(
            args.file, args.output, args.keep_uris, args.metrics_port, args.resume, args.quiet
        )
    except exitcodes.RuntimeExit as exc:  # an invalid job, or data that cannot be staged
        print(f"trainforge: {exc.message}", file=sys.stderr)
        code = exc.code
    return code


def _sweep(args: argparse.Namespace) -> int:
    """`trainforge sweep FILE --local` (trainforge_runtime.sweep)."""
    from trainforge_runtime.sweep import run_sweep_local

    if not args.local:
        print("trainforge sweep: only --local is supported; use kubectl apply -f for clusters")
        return 2
    try:
        return run_sweep_local(args.file, args.output, args.parallel)
    except exitcodes.InvalidContextError as exc:
        print(f"trainforge: {exc.message}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())

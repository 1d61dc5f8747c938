"""Control-plane benchmark: 200 two-worker GPU TrainingJobs applied at once on the kwok tier.

Brings up the real control plane of ``tests/integration/tf_controlplane.py`` (etcd,
kube-apiserver, controller-manager, scheduler, kwok) with 50 fake nodes of 8 GPUs, runs the
operator as a separate process (``python -m trainforge_operator.main``, configured through
``TRAINFORGE_CONFIG``) so its peak RSS and CPU seconds can be read from /proc, creates the jobs
concurrently and watches pods. Latencies start at the client clock right BEFORE each create call
(so they include the create round trip); "pods created" and "Running" are the times the watch in
this process first sees every worker pod of the job exist / in phase Running (read as raw JSON:
building client models for 1,600 pod events cost this process 1.5 CPU-s and delayed sightings).

Writes bench/results/control-plane.json and prints a table. Targets: p99 apply -> all pods created
< 2 s, operator peak RSS < 200 MB. Exit status: 1 when pods never all ran (or, with --strict, a
target was missed), 2 when the tier could not start.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import importlib.util
import json
import os
import platform
import py_compile
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.watch.watch import iter_resp_lines
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import tf_controlplane as tier  # noqa: E402
from operator_fixture import CRD_FILE, GROUP, PLURAL, VERSION, use_kubeconfig  # noqa: E402
from operator_fixture import operator_config_for as tier_operator_config  # noqa: E402

RESULTS = REPO / "bench" / "results" / "control-plane.json"
FLOOR_RESULTS = REPO / "bench" / "results" / "control-plane-floor.json"
NAMESPACE = "bench"
JOB_LABEL = "trainforge.io/job-name"
TARGET_CREATED_P99_S = 2.0
TARGET_RSS_MB = 200.0
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    """Progress line with a UTC timestamp (the run takes minutes)."""
    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {message}", flush=True)


# ---- operator process -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


@dataclass
class CpuLedger:
    """Where the CPU went during the measured window: each tier process, the operator, the
    bench itself, and everything else on the machine (other builds and sessions)."""

    pids: dict[str, int]
    start: dict[str, float] = field(default_factory=dict)
    machine_start: tuple[float, float] = (0.0, 0.0)
    wall_start: float = 0.0

    def begin(self) -> None:
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.start["bench (this process)"] = time.process_time()
        self.machine_start, self.wall_start = machine_cpu(), time.monotonic()

    def end(self) -> dict[str, Any]:
        used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        used["bench (this process)"] = time.process_time() - self.start["bench (this process)"]
        busy, total = machine_cpu()
        machine_busy = busy - self.machine_start[0]
        ours = sum(used.values())
        return {
            "window_wall_s": round(time.monotonic() - self.wall_start, 1),
            "machine_cpu_s_available": round(total - self.machine_start[1], 1),
            "machine_cpu_s_busy": round(machine_busy, 1),
            "other_processes_cpu_s": round(machine_busy - ours, 1),
            "per_process_cpu_s": {k: round(v, 2) for k, v in sorted(used.items())},
        }


@dataclass
class ProcStats:
    """Peak RSS and CPU seconds of one process, read from /proc (no psutil needed)."""

    pid: int
    peak_rss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    cpu_s: float = 0.0

    def sample(self) -> None:
        """VmHWM is the kernel's own RSS high-water mark, so sampling gaps cannot miss a peak."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_mb = int(line.split()[1]) / 1024
        self.cpu_s = cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        try:
            return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * PAGE / 2**20
        except OSError:
            return 0.0


OPERATOR_MODULE = "trainforge_operator.main"
# The operator image does not install the `kubernetes` client (pyproject's operator extra), but
# this venv has it for the tests, and kopf imports it whenever it can (~28 MB of RSS). Hide it, as
# the image does, and run the production entry point.
AS_IN_THE_IMAGE = (
    "import runpy, sys; sys.modules['kubernetes'] = None; "
    f"runpy.run_module({OPERATOR_MODULE!r}, run_name='__main__', alter_sys=True)"
)


def operator_config(metrics_port: int, health_port: int) -> dict[str, Any]:
    """The tier's pools (from the integration fixture), production resync/progress intervals."""
    pools = tier_operator_config(NAMESPACE).node_pools
    return {
        "namespaces": [NAMESPACE],
        "defaultNodePool": "gpu",
        "nodePools": {name: p.model_dump(by_alias=True) for name, p in pools.items()},
        "metricsPort": metrics_port,
        "healthPort": health_port,
        "progressSource": "annotation",  # kwok pod IPs are not reachable
        "logLevel": "INFO",
        "logFormat": "json",
        # the chart's default unless BENCH_API_CONCURRENCY says otherwise (to compare settings)
        "apiConcurrency": int(os.environ.get("BENCH_API_CONCURRENCY", "16")),
    }


def operator_argv(floor: bool = False) -> list[str]:
    """The production entry point; under cProfile when BENCH_OPERATOR_PROFILE names an output,
    or sampled by py-spy (raw collapsed stacks) when BENCH_OPERATOR_PYSPY does.
    With `floor`, bench/floor_controller.py instead: the least any operator must do."""
    if floor:
        return [sys.executable, "-m", "bench.floor_controller"]
    profile = os.environ.get("BENCH_OPERATOR_PROFILE")
    if profile:
        return [sys.executable, "-m", "cProfile", "-o", profile, "-m", OPERATOR_MODULE]
    image_like = [sys.executable, "-c", AS_IN_THE_IMAGE]
    sampled = os.environ.get("BENCH_OPERATOR_PYSPY")
    if sampled:  # every thread (cProfile sees only the event loop's), at 100 Hz
        pyspy = str(Path(sys.executable).with_name("py-spy"))
        record = [pyspy, "record", "--format", "raw", "--rate", "100", "-o", sampled, "--"]
        return [*record, *image_like]
    return image_like


OPERATOR_IMPORTS = (
    "import sys, trainforge_operator.main, kubernetes.client.api.core_v1_api, "
    "kubernetes.client.api.custom_objects_api\n"
    "print('\\n'.join(getattr(m, '__file__', None) or '' for m in list(sys.modules.values())))"
)


def ensure_operator_bytecode() -> int:
    """Compile every module the operator imports, as its image does (Dockerfile: compileall).

    Without bytecode (this machine sets PYTHONDONTWRITEBYTECODE, and a venv made without
    --compile-bytecode has none) the operator compiles kubernetes' 4.5 MB core_v1_api.py at start
    and its RSS keeps ~65 MB of that, which no production operator pays. Returns files compiled.
    """
    out = subprocess.run(
        [sys.executable, "-c", OPERATOR_IMPORTS], capture_output=True, text=True, check=True
    ).stdout
    compiled = 0
    for path in filter(None, out.splitlines()):
        if path.endswith(".py") and not Path(importlib.util.cache_from_source(path)).exists():
            compiled += bool(py_compile.compile(path, doraise=False, quiet=1))
    return compiled


def start_operator(
    cp: tier.ControlPlane, floor: bool = False
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Run the operator like production does (or the floor controller) and wait for /healthz."""
    metrics_port, health_port = tier.free_port(), tier.free_port()
    cfg = cp.workdir / "operator-config.yaml"
    cfg.write_text(yaml.safe_dump(operator_config(metrics_port, health_port)))
    log_path = cp.log_path("floor-controller" if floor else "operator")
    # MALLOC_ARENA_MAX as the chart's Deployment sets it (fewer per-thread malloc arenas).
    env = {**cp.env(), "TRAINFORGE_CONFIG": str(cfg), "MALLOC_ARENA_MAX": "2"}
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            operator_argv(floor),
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise tier.TierError(f"the operator exited with {proc.returncode}; see {log_path}")
        if tier._http_ok(f"http://127.0.0.1:{health_port}/healthz"):
            return proc, metrics_port, log_path
        time.sleep(0.3)
    proc.kill()
    raise tier.TierError(f"the operator's /healthz never answered within 60s; see {log_path}")


def stop_operator(proc: subprocess.Popen[bytes]) -> None:
    if os.environ.get("BENCH_OPERATOR_PYSPY"):
        proc.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT only
    else:
        proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def scrape_operator(metrics_port: int) -> dict[str, Any]:
    """Reconcile count/time, API errors and time-to-running from the operator's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as err:
        return {"error": f"could not scrape /metrics: {err}"}
    out: dict[str, Any] = {"api_errors": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("trainforge_reconcile_duration_seconds_") and not s.labels:
                out[s.name.removeprefix("trainforge_")] = s.value
            elif s.name == "trainforge_api_errors_total" and s.value:
                out["api_errors"][f"{s.labels['verb']} {s.labels['resource']}"] = s.value
            elif s.name == "trainforge_time_to_running_seconds_sum":
                out["time_to_running_sum_s"] = s.value
            elif s.name == "trainforge_time_to_running_seconds_count":
                out["time_to_running_count"] = s.value
    count = out.get("reconcile_duration_seconds_count") or 0
    if count:
        out["reconcile_mean_ms"] = round(1000 * out["reconcile_duration_seconds_sum"] / count, 2)
    return out


def apiserver_requests(cp: tier.ControlPlane, top: int = 15) -> dict[str, int]:
    """Requests the apiserver served since it started, by verb and resource (all clients)."""
    proc = cp.kubectl("get", "--raw", "/metrics")
    if proc.returncode != 0:
        return {}
    counts: dict[str, float] = defaultdict(float)
    try:
        families = list(text_string_to_metric_families(proc.stdout))
    except ValueError as err:
        print(f"warning: could not parse the apiserver's /metrics: {err}", file=sys.stderr)
        return {}
    for family in families:
        if family.name != "apiserver_request":
            continue
        for s in family.samples:
            if s.name == "apiserver_request_total" and s.labels.get("resource"):
                sub = f"/{s.labels['subresource']}" if s.labels.get("subresource") else ""
                counts[f"{s.labels['verb']} {s.labels['resource']}{sub}"] += s.value
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return {k: int(v) for k, v in ranked}


# ---- cluster setup ----------------------------------------------------------------------------


def add_gpu_nodes(core: k8s.CoreV1Api, start: int, stop: int, gpus: int) -> None:
    """Create the rest of the fake GPU nodes through the API (one kubectl per node is slow)."""
    for i in range(start, stop):
        core.create_node(tier.node_manifest(f"gpu-{i}", "gpu", gpus))


def _conditions(node: k8s.V1Node) -> list[k8s.V1NodeCondition]:
    return (node.status.conditions if node.status else None) or []


def wait_nodes_ready(core: k8s.CoreV1Api, want: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        ready = sum(
            any(c.type == "Ready" and c.status == "True" for c in _conditions(n))
            for n in core.list_node().items
        )
        if ready >= want:
            return
        time.sleep(1)
    raise tier.TierError(f"only {ready}/{want} kwok nodes became Ready in {timeout:.0f}s")


def prepare(cp: tier.ControlPlane, core: k8s.CoreV1Api, nodes: int, gpus: int) -> None:
    cp.kubectl("apply", "-f", str(CRD_FILE), check=True)
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/trainingjobs.trainforge.io", check=True)  # fmt: skip
    cp.kubectl("create", "namespace", NAMESPACE, check=True)
    add_gpu_nodes(core, cp.pools.gpu_nodes, nodes, gpus)
    wait_nodes_ready(core, nodes)
    while cp.kubectl("get", "serviceaccount", "default", "-n", NAMESPACE).returncode:
        time.sleep(0.3)


def job_manifest(name: str, workers: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
            "parallelism": {"layout": "data", "nodes": workers, "procsPerNode": 1},
            "resources": {"gpus": 1, "cpu": "1", "memory": "2Gi"},
            "nodePool": "gpu",
        },
    }


# ---- measurement ------------------------------------------------------------------------------


@dataclass
class Observations:
    """Monotonic times seen by this process, keyed by job name."""

    applied_before: dict[str, float] = field(default_factory=dict)
    applied_after: dict[str, float] = field(default_factory=dict)
    pods_seen: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    pods_running: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    lock: threading.Lock = field(default_factory=threading.Lock)
    label: str = JOB_LABEL  # the pod label naming the job (another operator labels differently)

    def on_pod(self, pod: dict[str, Any], now: float) -> None:
        meta = pod.get("metadata") or {}
        job = (meta.get("labels") or {}).get(self.label)
        if not job:
            return
        with self.lock:
            self.pods_seen[job].setdefault(meta["name"], now)
            if (pod.get("status") or {}).get("phase") == "Running":
                self.pods_running[job].setdefault(meta["name"], now)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return (
                sum(len(v) for v in self.pods_seen.values()),
                sum(len(v) for v in self.pods_running.values()),
            )

    def all_within(self, table: dict[str, dict[str, float]], job: str, want: int) -> float | None:
        """When the `want`-th distinct pod of the job was first seen (None: not yet)."""
        with self.lock:
            times = sorted(table.get(job, {}).values())
        return times[want - 1] if len(times) >= want else None


def watch_pods(core: k8s.CoreV1Api, obs: Observations, stop: threading.Event) -> None:
    """Pod watch in the bench namespace; restarts from a fresh list if the stream ends.

    Reads the raw JSON lines: building V1Pod models costs milliseconds per event, and 1,600
    events of that in this process would delay the very sightings being timed."""
    while not stop.is_set():
        try:
            listing = orjson.loads(
                core.list_namespaced_pod(
                    NAMESPACE, label_selector=obs.label, _preload_content=False
                ).data
            )
        except (urllib3.exceptions.HTTPError, k8s.ApiException):
            # A LIST that times out on a loaded machine used to end this thread silently, and
            # the bench then waited for pods it had stopped counting: list again instead.
            time.sleep(0.5)
            continue
        now = time.monotonic()
        for pod in listing["items"]:
            obs.on_pod(pod, now)
        try:
            resp: Any = core.list_namespaced_pod(
                NAMESPACE,
                label_selector=obs.label,
                resource_version=listing["metadata"]["resourceVersion"],
                allow_watch_bookmarks=False,
                timeout_seconds=30,
                watch=True,
                _preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, k8s.ApiException):
            # e.g. 429 while the API server's watch cache initialises: list again, as above
            time.sleep(0.5)
            continue
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    break  # e.g. 410 Gone: resource version expired, list again
                obs.on_pod(event["object"], time.monotonic())
                if stop.is_set():
                    break
        except urllib3.exceptions.HTTPError:
            if stop.is_set():  # the tier is being torn down
                return
            time.sleep(0.5)  # stream cut: list again (sightings keep their first time)
        finally:
            resp.release_conn()


def create_jobs(custom: k8s.CustomObjectsApi, obs: Observations, jobs: int, workers: int) -> None:
    """Create every job concurrently ('applied at once'), timing each create call."""

    def create(i: int) -> None:
        name = f"bench-{i:03d}"
        body = job_manifest(name, workers)
        before = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        after = time.monotonic()
        with obs.lock:
            obs.applied_before[name] = before
            obs.applied_after[name] = after

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(jobs)))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return round(ordered[rank - 1], 3)


def summarize(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_s": percentile(values, 50),
        "p99_s": percentile(values, 99),
        "max_s": round(max(values), 3) if values else None,
        "mean_s": round(statistics.fmean(values), 3) if values else None,
    }


def latencies(obs: Observations, workers: int) -> dict[str, dict[str, Any]]:
    created, running, create_call = [], [], []
    for job, before in obs.applied_before.items():
        create_call.append(obs.applied_after[job] - before)
        t_created = obs.all_within(obs.pods_seen, job, workers)
        t_running = obs.all_within(obs.pods_running, job, workers)
        if t_created is not None:
            created.append(t_created - before)
        if t_running is not None:
            running.append(t_running - before)
    return {
        "apply_to_all_pods_created": summarize(created),
        "apply_to_all_pods_running": summarize(running),
        "create_call": summarize(create_call),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Bring the tier up, run the load, tear everything down, return the result document."""
    want_pods = args.jobs * args.workers
    pools = tier.NodePools(gpu_nodes=min(args.nodes, 4), cpu_nodes=0, gpus_per_node=args.gpus)
    with tier.running_control_plane(pools, keep=args.keep, say=say) as cp:
        api = use_kubeconfig(cp.kubeconfig)
        core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
        prepare(cp, core, args.nodes, args.gpus)
        k8s_version = k8s.VersionApi(api).get_code().git_version
        say(f"tier ready: {args.nodes} GPU nodes x {args.gpus} GPUs, kubernetes {k8s_version}")
        compiled = ensure_operator_bytecode()
        if compiled:
            say(f"compiled {compiled} modules the operator imports (its image ships bytecode)")
        proc, metrics_port, log_path = start_operator(cp, floor=args.floor)
        stats = ProcStats(proc.pid)
        stats.sample()
        stats.idle_rss_mb = stats.rss_mb()
        cpu_at_start = stats.cpu_s
        what = "floor controller (--floor)" if args.floor else "operator"
        say(f"{what} pid {proc.pid} ready, RSS {stats.idle_rss_mb:.0f} MB; log {log_path}")
        obs, stop = Observations(), threading.Event()
        watcher = threading.Thread(target=watch_pods, args=(core, obs, stop), daemon=True)
        watcher.start()
        time.sleep(1)  # let the watch open before the first create
        ledger = CpuLedger({name: p.pid for name, p, _ in cp._procs} | {"operator": proc.pid})
        ledger.begin()
        t0 = time.monotonic()
        operator_metrics: dict[str, Any] = {}
        try:
            say(f"creating {args.jobs} TrainingJobs x {args.workers} workers ...")
            create_jobs(custom, obs, args.jobs, args.workers)
            say(f"all {args.jobs} created in {time.monotonic() - t0:.2f}s")
            deadline = t0 + args.timeout
            while time.monotonic() < deadline:
                seen, running = obs.counts()
                stats.sample()
                say(
                    f"t+{time.monotonic() - t0:6.1f}s pods created {seen:4d}/{want_pods} "
                    f"Running {running:4d}/{want_pods}  {what} RSS {stats.rss_mb():5.0f} MB "
                    f"cpu {stats.cpu_s - cpu_at_start:6.1f}s"
                )
                if running >= want_pods:
                    break
                time.sleep(2)
            time.sleep(args.settle)  # let a resync pass run so the CPU figure includes it
            cpu = ledger.end()
            stats.sample()
            if not args.floor:
                operator_metrics = scrape_operator(metrics_port)
        finally:
            stop.set()
            stop_operator(proc)
        seen, running = obs.counts()
        requests = apiserver_requests(cp)
        operator = {
            "process": " ".join(operator_argv(args.floor)[1:]),
            "peak_rss_mb": round(stats.peak_rss_mb, 1),
            "rss_after_start_mb": round(stats.idle_rss_mb, 1),
            "cpu_seconds": round(stats.cpu_s - cpu_at_start, 2),
            "cpu_seconds_including_startup": round(stats.cpu_s, 2),
            "metrics": operator_metrics,
        }
        return {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "mode": "floor" if args.floor else "operator",
            "environment": {
                "host": platform.node(),
                "cores": os.cpu_count(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
                "kubernetes": k8s_version,
                "versions": tier.pinned_versions(),
                "nodes": args.nodes,
                "gpus_per_node": args.gpus,
                "jobs": args.jobs,
                "workers_per_job": args.workers,
                "gpus_per_worker": 1,
                "pods_expected": want_pods,
                "pods_seen": seen,
                "pods_running": running,
            },
            "clock": "client monotonic clock; apply = right BEFORE each create call "
            "(16 concurrent creators); pod times = first sighting by this process's pod watch "
            "(raw JSON)",
            "latency": latencies(obs, args.workers),
            "operator": operator,
            "cpu_during_run": cpu,
            "apiserver_requests_top": requests,
            "targets": {
                "p99_apply_to_all_pods_created_s": TARGET_CREATED_P99_S,
                "peak_rss_mb": TARGET_RSS_MB,
            },
        }


def verdict(result: dict[str, Any]) -> list[str]:
    """Which targets were missed (empty: all met)."""
    missed = []
    env, lat = result["environment"], result["latency"]
    if env["pods_running"] < env["pods_expected"]:
        missed.append(f"only {env['pods_running']}/{env['pods_expected']} pods reached Running")
    p99 = lat["apply_to_all_pods_created"]["p99_s"]
    if lat["apply_to_all_pods_created"]["n"] < env["jobs"] or p99 is None:
        missed.append("not every job got all its pods")
    elif p99 >= TARGET_CREATED_P99_S:
        missed.append(f"p99 apply -> all pods created {p99:.2f}s >= {TARGET_CREATED_P99_S}s")
    rss = result["operator"]["peak_rss_mb"]
    if rss >= TARGET_RSS_MB:
        missed.append(f"operator peak RSS {rss:.0f} MB >= {TARGET_RSS_MB:.0f} MB")
    return missed


def read_floor() -> dict[str, Any] | None:
    """The last --floor result, to print beside the operator's figures."""
    try:
        return json.loads(FLOOR_RESULTS.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def print_table(result: dict[str, Any]) -> None:
    env, lat, op = result["environment"], result["latency"], result["operator"]
    print()
    print(
        f"control-plane benchmark: {env['jobs']} jobs x {env['workers_per_job']} workers on "
        f"{env['nodes']} kwok nodes x {env['gpus_per_node']} GPUs, k8s {env['kubernetes']}, "
        f"{env['cores']} cores (load {env['load_average_1m_at_end']})"
    )
    print(f"{'measure':<34}{'n':>5}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
    for key in ("create_call", "apply_to_all_pods_created", "apply_to_all_pods_running"):
        row = lat[key]
        cells = [f"{row[k]:9.3f}" if row[k] is not None else f"{'-':>9}" for k in
                 ("p50_s", "p99_s", "max_s")]  # fmt: skip
        print(f"{key.replace('_', ' '):<34}{row['n']:>5}{''.join(cells)}")
    floor_mode = result.get("mode", "operator") != "operator"
    who = "floor controller" if floor_mode else "operator"
    print(f"{who + ' peak RSS':<34}{op['peak_rss_mb']:>14.1f} MB (target < {TARGET_RSS_MB:.0f})")
    print(f"{who + ' CPU seconds':<34}{op['cpu_seconds']:>14.2f} s")
    m = op["metrics"]
    if "reconcile_mean_ms" in m:
        print(
            f"{'reconciles (mean)':<34}{m['reconcile_duration_seconds_count']:>14.0f} "
            f"({m['reconcile_mean_ms']} ms)"
        )
    floor = None if floor_mode else read_floor()
    if floor is not None:
        row = floor["latency"]["apply_to_all_pods_created"]
        print(
            f"floor, the least any operator must do ({FLOOR_RESULTS.relative_to(REPO)}, "
            f"{floor['when']}): apply to all pods created p50 {row['p50_s']} s, "
            f"p99 {row['p99_s']} s"
        )
    cpu = result["cpu_during_run"]
    print(
        f"CPU during the run ({cpu['window_wall_s']} s wall, "
        f"{cpu['machine_cpu_s_available']} CPU-s available, "
        f"{cpu['machine_cpu_s_busy']} busy, {cpu['other_processes_cpu_s']} by other processes):"
    )
    print("  " + ", ".join(f"{k} {v}" for k, v in cpu["per_process_cpu_s"].items()))
    top = list(result["apiserver_requests_top"].items())[:8]
    print("apiserver requests (all clients): " + ", ".join(f"{k} {v}" for k, v in top))
    if floor_mode:
        return
    missed = verdict(result)
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50, help="fake GPU nodes")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="worker pods per job (1 GPU each)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for Running")
    parser.add_argument("--settle", type=float, default=5, help="seconds of idle after Running")
    parser.add_argument("--keep", action="store_true", help="keep the tier work dir and logs")
    parser.add_argument("--out", type=Path, help=f"default {RESULTS.relative_to(REPO)}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="run bench/floor_controller.py instead of the operator: it only creates each job's "
        "children (what this machine allows any operator); "
        f"writes {FLOOR_RESULTS.relative_to(REPO)} unless --out says otherwise",
    )
    args = parser.parse_args(argv)
    args.out = args.out or (FLOOR_RESULTS if args.floor else RESULTS)
    if args.jobs * args.workers > args.nodes * args.gpus:
        parser.error("more worker GPUs than node GPUs: raise --nodes/--gpus or lower --jobs")
    try:
        result = run(args)
    except tier.TierError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {args.out}")
    env = result["environment"]
    incomplete = env["pods_running"] < env["pods_expected"]
    return 1 if incomplete or (args.strict and verdict(result)) else 0


if __name__ == "__main__":
    raise SystemExit(main())

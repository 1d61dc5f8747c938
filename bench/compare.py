"""trainforge side by side with the Kubeflow Training Operator: one burst, interleaved rounds.

Each round starts the control-plane tier of ``tests/integration/tf_controlplane.py`` once per
contender (a fresh etcd, kube-apiserver, scheduler, controller-manager and kwok with 50 fake
nodes of 8 GPUs), runs that contender as its own process and creates the same burst: 200 jobs of
2 workers with 1 GPU each, all at once. The contenders:

- ``floor``: ``bench/floor_controller.py``, which only creates each job's children;
- ``trainforge``: the operator, configured like the chart (``apiConcurrency: 16``);
- ``kubeflow-tuned``: Kubeflow Training Operator v1 (PyTorchJob, 1 Master + 1 Worker) with
  ``--controller-threads=16 --kube-api-qps=1000 --kube-api-burst=2000``;
- ``kubeflow-shipped``: the same binary as its release manifest runs it (1 reconcile thread, a
  client throttle of 20 QPS / burst 30).

The order rotates every round so that no contender always runs first or last on this shared
machine. Per run: apply -> all pods created (p50, p99) and -> all Running, from this process's
pod watch; the contender's CPU-seconds per job and peak RSS from /proc; API requests per job by
verb and resource (deltas of the apiserver's ``apiserver_request_total`` over the burst, every
client included: the scheduler's bindings and kwok's status patches are the same for all). The
summary is the median of the rounds with min-max spread, and the ratios trainforge / Kubeflow
tuned. Writes bench/results/compare.json. Kubeflow is built by ``hack/build-kubeflow.sh``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from bench import control_plane as cpb

tier = cpb.tier
RESULTS = cpb.REPO / "bench" / "results" / "compare.json"
CONTENDERS = ("floor", "trainforge", "kubeflow-tuned", "kubeflow-shipped")
TUNED_ARGS = ("--controller-threads=16", "--kube-api-qps=1000", "--kube-api-burst=2000")
KUBEFLOW_LABEL = "training.kubeflow.org/job-name"
KUBEFLOW_NAMESPACE = "kubeflow"
KUBEFLOW_SECRET = "training-operator-webhook-cert"
KUBEFLOW_SERVICE_DNS = "training-operator.kubeflow.svc"
KUBEFLOW_CA_NAME = "training-operator-ca"
# Hard-coded in the operator's pkg/cert/cert.go: the rotator waits for tls.crt here.
KUBEFLOW_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
TARGETS = {"p99_created_ratio": 1.0, "cpu_per_job_ratio": 1.0, "peak_rss_mb": 100.0}


def kubeflow_version() -> str:
    """The Kubeflow Training Operator pin of hack/versions.env (the environment wins, as there)."""
    key = "KUBEFLOW_TRAINING_OPERATOR_VERSION"
    for line in (cpb.REPO / "hack" / "versions.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return os.environ.get(key) or line.split("=", 1)[1].strip()
    return os.environ.get(key, "unknown")


def kubeflow_dir() -> Path:
    """Build (once) and locate the Kubeflow Training Operator: its cache directory."""
    out = subprocess.run(
        [str(cpb.REPO / "hack" / "build-kubeflow.sh")], stdout=subprocess.PIPE, text=True
    )
    if out.returncode != 0:
        raise tier.TierError("hack/build-kubeflow.sh failed (its log is above)")
    return Path(out.stdout.strip()).parents[1]


# ---- Kubeflow's certificates -----------------------------------------------------------------


def make_kubeflow_certs(d: Path) -> dict[str, Path]:
    """A CA and a serving certificate the operator's cert rotator accepts as valid (SAN = the
    service DNS name, 10 years), so it neither regenerates them nor waits for a kubelet mount."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    # PKCS#1 keys ("-traditional"): the rotator parses the CA key with x509.ParsePKCS1PrivateKey.
    openssl("genrsa", "-traditional", "-out", "ca.key", "2048")
    openssl(
        "req",
        "-x509",
        "-key",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        f"/CN={KUBEFLOW_CA_NAME}",
        "-addext",
        f"subjectAltName=DNS:{KUBEFLOW_CA_NAME}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment",
    )
    openssl("genrsa", "-traditional", "-out", "tls.key", "2048")
    openssl(
        "req", "-new", "-key", "tls.key", "-out", "tls.csr", "-subj", f"/CN={KUBEFLOW_SERVICE_DNS}"
    )
    (d / "san.ext").write_text(
        f"subjectAltName=DNS:{KUBEFLOW_SERVICE_DNS}\nextendedKeyUsage=serverAuth\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "san.ext",
        "-out",
        "tls.crt",
    )
    return {name: d / name for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")}


def prepare_kubeflow(cp: tier.ControlPlane, crd: Path) -> None:
    """The PyTorchJob CRD (kubectl create: ~645 KB is over apply's annotation limit), the
    kubeflow namespace, and the webhook certificate as Secret and as files."""
    created = cp.kubectl("create", "-f", str(crd))
    if created.returncode != 0:
        raise tier.TierError(f"kubectl create -f {crd}: {created.stderr.strip()}")
    deadline = time.monotonic() + 60
    while (
        waited := cp.kubectl(
            "wait", "--for=condition=Established", "--timeout=10s", "crd/pytorchjobs.kubeflow.org"
        )
    ).returncode:
        if time.monotonic() > deadline:
            raise tier.TierError(f"PyTorchJob CRD not Established: {waited.stderr.strip()}")
        time.sleep(1)
    cp.kubectl("create", "namespace", KUBEFLOW_NAMESPACE, check=True)
    certs = make_kubeflow_certs(Path(tempfile.mkdtemp(dir=cp.workdir, prefix="kubeflow-certs-")))
    cp.kubectl(
        "create",
        "secret",
        "generic",
        KUBEFLOW_SECRET,
        "-n",
        KUBEFLOW_NAMESPACE,
        *(f"--from-file={name}={path}" for name, path in certs.items()),
        check=True,
    )
    KUBEFLOW_CERT_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        (KUBEFLOW_CERT_DIR / name).write_bytes(certs[name].read_bytes())


def start_kubeflow(
    cp: tier.ControlPlane, binary: Path, tuned: bool
) -> tuple[subprocess.Popen[bytes], Path]:
    """Run the Kubeflow operator (PyTorchJob only; its other kinds' CRDs are not installed) on
    free ports and wait until /readyz says its controllers are set up (after the certs)."""
    metrics, health, webhook = tier.free_port(), tier.free_port(), tier.free_port()
    argv = [
        str(binary),
        "--enable-scheme=pytorchjob",
        f"--metrics-bind-address=127.0.0.1:{metrics}",
        f"--health-probe-bind-address=127.0.0.1:{health}",
        f"--webhook-server-port={webhook}",
        *(TUNED_ARGS if tuned else ()),
    ]
    log_path = cp.log_path("kubeflow-tuned" if tuned else "kubeflow-shipped")
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=cp.env())
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise tier.TierError(f"kubeflow exited with {proc.returncode}; see {log_path}")
        if tier._http_ok(f"http://127.0.0.1:{health}/readyz"):
            time.sleep(2)  # readyz opens when the certs are; the controllers start right after
            return proc, log_path
        time.sleep(0.3)
    proc.kill()
    raise tier.TierError(f"kubeflow's /readyz never answered within 90s; see {log_path}")


def pytorchjob_manifest(name: str, workers: int = 2) -> dict[str, Any]:
    """The Kubeflow twin of ``control_plane.job_manifest``: 1 Master + `workers` - 1 Workers,
    the same pods."""
    pool = cpb.tier_operator_config(cpb.NAMESPACE).node_pools["gpu"]

    def replica(replicas: int = 1) -> dict[str, Any]:
        return {
            "replicas": replicas,
            "restartPolicy": "OnFailure",
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": "trainforge/worker:0.1.0",
                            "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
                            "resources": {
                                "limits": {"nvidia.com/gpu": "1", "cpu": "1", "memory": "2Gi"},
                                "requests": {"nvidia.com/gpu": "1", "cpu": "1", "memory": "2Gi"},
                            },
                        }
                    ],
                    "nodeSelector": pool.node_selector,
                    "tolerations": pool.tolerations,
                }
            },
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": cpb.NAMESPACE},
        "spec": {"pytorchReplicaSpecs": {"Master": replica(), "Worker": replica(workers - 1)}},
    }


# ---- one run -----------------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    label: str  # pod label naming the job
    plural: tuple[str, str, str]  # group, version, plural of the job resource
    manifest: Callable[[str], dict[str, Any]]


def contender(name: str, workers: int) -> Contender:
    if name.startswith("kubeflow"):
        return Contender(
            name,
            KUBEFLOW_LABEL,
            ("kubeflow.org", "v1", "pytorchjobs"),
            lambda n: pytorchjob_manifest(n, workers),
        )
    return Contender(
        name,
        cpb.JOB_LABEL,
        (cpb.GROUP, cpb.VERSION, cpb.PLURAL),
        lambda n: cpb.job_manifest(n, workers),
    )


def request_counts(cp: tier.ControlPlane) -> dict[str, float]:
    """apiserver_request_total summed by 'verb resource[/subresource]' (all clients)."""
    proc = cp.kubectl("get", "--raw", "/metrics")
    counts: dict[str, float] = defaultdict(float)
    if proc.returncode != 0:
        return counts
    for family in text_string_to_metric_families(proc.stdout):
        if family.name != "apiserver_request":
            continue
        for s in family.samples:
            if s.name == "apiserver_request_total" and s.labels.get("resource"):
                sub = f"/{s.labels['subresource']}" if s.labels.get("subresource") else ""
                counts[f"{s.labels['verb']} {s.labels['resource']}{sub}"] += s.value
    return counts


def create_burst(
    custom: k8s.CustomObjectsApi, obs: cpb.Observations, who: Contender, jobs: int
) -> None:
    """All jobs at once from 16 threads, each create timed (as control_plane.create_jobs)."""
    group, version, plural = who.plural

    def create(i: int) -> None:
        name = f"bench-{i:03d}"
        before = time.monotonic()
        custom.create_namespaced_custom_object(
            group, version, cpb.NAMESPACE, plural, who.manifest(name)
        )
        after = time.monotonic()
        with obs.lock:
            obs.applied_before[name], obs.applied_after[name] = before, after

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(jobs)))


def rotated(names: list[str], round_index: int) -> list[str]:
    """The contenders in the order of round `round_index` (0-based): each round starts one
    later, so that none always runs first or last on a shared machine."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def wait_watchable(
    cp: tier.ControlPlane, plural: tuple[str, str, str], timeout: float = 60
) -> None:
    """Until the API server serves watches of the jobs and of pods: a fresh server answers 429
    while its watch cache starts, and a contender started then loses a second or more to its
    retry (seen as trainforge's job watch listing again at the burst's start)."""
    group, version, resource = plural
    paths = [
        f"/apis/{group}/{version}/namespaces/{cpb.NAMESPACE}/{resource}",
        f"/api/v1/namespaces/{cpb.NAMESPACE}/pods",
    ]
    deadline = time.monotonic() + timeout
    for path in paths:
        while cp.kubectl("get", "--raw", f"{path}?watch=true&timeoutSeconds=1").returncode:
            if time.monotonic() > deadline:
                raise tier.TierError(f"the API server never served a watch of {path}")
            time.sleep(0.5)


def operator_passes(metrics_port: int) -> float | None:
    """trainforge's reconcile passes so far (its /metrics): with CPU per job, the cost of one."""
    count = cpb.scrape_operator(metrics_port).get("reconcile_duration_seconds_count")
    return float(count) if count is not None else None


def quiet(message: str) -> None:
    """Drop a progress line."""


def run_one(name: str, args: argparse.Namespace, kubeflow: Path | None) -> dict[str, Any]:
    """One contender on a fresh tier: the burst, then its figures."""
    who = contender(name, args.workers)
    want_pods = args.jobs * args.workers
    pools = tier.NodePools(gpu_nodes=min(args.nodes, 4), cpu_nodes=0, gpus_per_node=args.gpus)
    tools = tier.find_tools()  # main() built them (ensure_tools) before the first round
    # say=quiet: the tier's own lines would drown the progress
    with tier.running_control_plane(pools, keep=args.keep, say=quiet, tools=tools) as cp:
        api = cpb.use_kubeconfig(cp.kubeconfig)
        core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
        cpb.prepare(cp, core, args.nodes, args.gpus)
        metrics_port = 0
        is_kubeflow = name.startswith("kubeflow")
        if is_kubeflow:
            assert kubeflow is not None
            prepare_kubeflow(cp, kubeflow / "crds" / "kubeflow.org_pytorchjobs.yaml")
        wait_watchable(cp, who.plural)
        if is_kubeflow:
            assert kubeflow is not None
            proc, _ = start_kubeflow(
                cp, kubeflow / "bin" / "training-operator", tuned=name == "kubeflow-tuned"
            )
        else:
            proc, metrics_port, _ = cpb.start_operator(cp, floor=name == "floor")
        stats = cpb.ProcStats(proc.pid)
        stats.sample()
        cpu0 = stats.cpu_s
        obs, stop = cpb.Observations(label=who.label), threading.Event()
        watcher = threading.Thread(target=cpb.watch_pods, args=(core, obs, stop), daemon=True)
        watcher.start()
        time.sleep(1)
        requests0 = request_counts(cp)
        t0 = time.monotonic()
        try:
            create_burst(custom, obs, who, args.jobs)
            deadline, last = t0 + args.timeout, 0.0
            while time.monotonic() < deadline:
                seen, running = obs.counts()
                stats.sample()
                if time.monotonic() - last >= 10:
                    last = time.monotonic()
                    cpb.say(
                        f"  {name:<17} t+{last - t0:5.0f}s created {seen:4d}/{want_pods} "
                        f"Running {running:4d}/{want_pods} cpu {stats.cpu_s - cpu0:5.1f}s"
                    )
                if running >= want_pods:
                    break
                time.sleep(0.5)
            time.sleep(args.settle)
            stats.sample()
            requests1 = request_counts(cp)
            passes = operator_passes(metrics_port) if name == "trainforge" else None
        finally:
            stop.set()
            cpb.stop_operator(proc)
    seen, running = obs.counts()
    lat = cpb.latencies(obs, args.workers)
    delta = {k: requests1[k] - requests0.get(k, 0.0) for k in requests1}
    per_job = {
        k: round(v / args.jobs, 2) for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v > 0
    }
    return {
        "contender": name,
        "pods_created": seen,
        "pods_running": running,
        "pods_expected": want_pods,
        "created_p50_s": lat["apply_to_all_pods_created"]["p50_s"],
        "created_p99_s": lat["apply_to_all_pods_created"]["p99_s"],
        "running_p50_s": lat["apply_to_all_pods_running"]["p50_s"],
        "running_p99_s": lat["apply_to_all_pods_running"]["p99_s"],
        "all_running_s": lat["apply_to_all_pods_running"]["max_s"],
        "cpu_seconds": round(stats.cpu_s - cpu0, 2),
        "cpu_ms_per_job": round(1000 * (stats.cpu_s - cpu0) / args.jobs, 2),
        "peak_rss_mb": round(stats.peak_rss_mb, 1),
        "api_requests_per_job": per_job,
        "passes_per_job": round(passes / args.jobs, 2) if passes is not None else None,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def run_once_more(name: str, args: argparse.Namespace, kubeflow: Path | None) -> dict[str, Any]:
    """`run_one`, tried a second time when the tier itself failed to come up (on a loaded
    machine the CRD can miss its 60 s to become Established); a second failure ends the run."""
    try:
        return run_one(name, args, kubeflow)
    except (tier.TierError, subprocess.CalledProcessError) as err:
        cpb.say(f"  {name}: the tier failed ({err}); trying once more")
        return run_one(name, args, kubeflow)


# ---- summary -----------------------------------------------------------------------------------

FIGURES = ("created_p50_s", "created_p99_s", "all_running_s", "cpu_ms_per_job", "peak_rss_mb")


def spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and min-max per contender and figure; API requests per job by median."""
    out: dict[str, Any] = {}
    for name in CONTENDERS:
        mine = [r for r in runs if r["contender"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {f: spread([r[f] for r in mine if r[f] is not None]) for f in FIGURES}
        keys = {k for r in mine for k in r["api_requests_per_job"]}
        row["api_requests_per_job"] = dict(
            sorted(
                (
                    (k, statistics.median(r["api_requests_per_job"].get(k, 0.0) for r in mine))
                    for k in keys
                ),
                key=lambda kv: -kv[1],
            )
        )
        row["rounds"] = len(mine)
        row["complete_rounds"] = sum(r["pods_running"] >= r["pods_expected"] for r in mine)
        out[name] = row
    return out


def ratios(
    summary: dict[str, Any], ours: str = "trainforge", theirs: str = "kubeflow-tuned"
) -> dict[str, float | None]:
    if ours not in summary or theirs not in summary:
        return {}
    result: dict[str, float | None] = {}
    for f in FIGURES:
        a, b = summary[ours][f]["median"], summary[theirs][f]["median"]
        result[f] = round(a / b, 2) if a is not None and b else None
    return result


WRITES = ("POST", "PUT", "PATCH", "DELETE")


def print_table(doc: dict[str, Any]) -> None:
    s, env = doc["summary"], doc["environment"]
    print()
    print(
        f"bench-compare: {env['jobs']} jobs x {env['workers_per_job']} workers, {env['nodes']} "
        f"kwok nodes x {env['gpus_per_node']} GPUs, {env['rounds']} interleaved rounds, "
        f"{env['cores']} cores; median [min-max]"
    )
    head = ("contender", "created p50 s", "created p99 s", "all Running s", "CPU ms/job", "RSS MB")
    print(f"{head[0]:<18}" + "".join(f"{h:>22}" for h in head[1:]))
    for name, row in s.items():
        cells = []
        for f in FIGURES:
            v = row[f]
            cells.append(
                f"{'-':>22}"
                if v["median"] is None
                else f"{v['median']:>9.2f} [{v['min']:.2f}-{v['max']:.2f}]".rjust(22)
            )
        print(f"{name:<18}" + "".join(cells))
    print(
        "ratios trainforge / kubeflow-tuned: "
        + ", ".join(f"{k} {v}" for k, v in doc["ratios"].items())
    )
    for name, row in s.items():
        reqs = row["api_requests_per_job"]
        writes = sum(v for k, v in reqs.items() if k.split()[0] in WRITES)
        top = ", ".join(f"{k} {v:g}" for k, v in list(reqs.items())[:8])
        print(f"API/job {name}: writes {writes:.1f}; {top}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="pods per job (Kubeflow: 1 Master + workers - 1 Workers)",
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--settle", type=float, default=5)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in args.contenders.split(",") if n]
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {CONTENDERS}")
    try:
        tier.ensure_tools(cpb.say)
        kubeflow = kubeflow_dir() if any(n.startswith("kubeflow") for n in names) else None
        if cpb.ensure_operator_bytecode():
            cpb.say("compiled the operator's imports (its image ships bytecode)")
        runs: list[dict[str, Any]] = []
        for r in range(args.rounds):
            order = rotated(names, r)
            for name in order:
                cpb.say(f"round {r + 1}/{args.rounds}: {name}")
                result = run_once_more(name, args, kubeflow) | {"round": r + 1}
                cpb.say(
                    f"  {name}: created p99 {result['created_p99_s']} s, all Running "
                    f"{result['all_running_s']} s, CPU {result['cpu_ms_per_job']} ms/job, "
                    f"peak RSS {result['peak_rss_mb']} MB"
                )
                runs.append(result)
    except tier.TierError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = summarize(runs)
    doc = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "environment": {
            "host": platform.node(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "versions": tier.pinned_versions() | {"kubeflow": kubeflow_version()},
            "nodes": args.nodes,
            "gpus_per_node": args.gpus,
            "jobs": args.jobs,
            "workers_per_job": args.workers,
            "rounds": args.rounds,
            "kubeflow_tuned_args": list(TUNED_ARGS),
        },
        "method": __doc__,
        "summary": summary,
        "ratios": ratios(summary),
        "targets": TARGETS,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(doc)
    print(f"wrote {args.out}")
    return 0 if all(r["pods_running"] >= r["pods_expected"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())

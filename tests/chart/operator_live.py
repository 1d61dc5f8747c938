"""Run the real operator (`python -m trainforge_operator.main`) against the control-plane tier.

For the live dashboard test and the dashboard renders: the operator reads the config.yaml that
the chart renders (so the chart's ConfigMap is exercised too), watches one namespace on a real
kube-apiserver with kwok nodes, and handles a small mix of TrainingJobs so every Operator panel
has real data: jobs that start, a gang that cannot fit its GPU pool (pending GPU demand), and a
job naming an unknown node pool (fails), one whose pods a LimitRange forbids (the API server
refuses the create: an API error), a flaky one that restarts and recovers again and again, and
two jobs admitted by a real Kueue (queued time).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from helmrender import helm_binary, of_kind, render
from promfixture import free_ports

REPO = Path(__file__).resolve().parents[2]
INTEGRATION = REPO / "tests" / "integration"
CRD_FILE = REPO / "crds" / "trainingjobs.trainforge.io.yaml"
SWEEP_CRD_FILE = REPO / "crds" / "trainingsweeps.trainforge.io.yaml"
SCHEDULE_CRD_FILE = REPO / "crds" / "trainingschedules.trainforge.io.yaml"
NAMESPACE = "ml-demo"


def _controlplane_module() -> Any:
    if str(INTEGRATION) not in sys.path:
        sys.path.insert(0, str(INTEGRATION))
    import tf_controlplane

    return tf_controlplane


def control_plane_missing() -> str | None:
    """Why the control-plane tier cannot start here (None: its binaries are built)."""
    try:
        missing = _controlplane_module().find_tools().missing()
    except Exception as exc:  # the tier module itself may be absent or broken
        return f"control-plane tier unavailable: {exc}"
    if missing:
        scripts = " && ".join(dict.fromkeys(t.script for t in missing))
        return f"control-plane binaries not built ({', '.join(t.name for t in missing)}): {scripts}"
    return None


def chart_config(metrics_port: int, health_port: int) -> dict[str, Any]:
    """The operator config exactly as the chart renders it, for one namespace and kwok pools."""
    pools = {
        "gpu": {
            "nodeSelector": {"trainforge.io/pool": "gpu"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
        "cpu": {"nodeSelector": {"trainforge.io/pool": "cpu"}},
    }
    values = {
        "watchNamespaces": [NAMESPACE],
        "metrics": {"port": metrics_port},
        "healthPort": health_port,
        "operator": {"logFormat": "text"},
        "kueue": {"enabled": True},
        # kwok pods have no reachable IPs: progress comes from the pod annotation.
        "config": {
            "nodePools": pools,
            "defaultNodePool": "cpu",
            "extra": {"resyncSeconds": 2, "progressSource": "annotation"},
        },
    }
    values_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"tf-live-values-{os.getpid()}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    try:
        docs = render(helm_binary(), values=[values_file])
    finally:
        values_file.unlink(missing_ok=True)
    cm = next(d for d in of_kind(docs, "ConfigMap") if "config.yaml" in d.get("data", {}))
    return dict(yaml.safe_load(cm["data"]["config.yaml"]))


def job(name: str, nodes: int, gpus: int, pool: str) -> dict[str, Any]:
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
            "parallelism": {"layout": "data", "nodes": nodes, "procsPerNode": 1},
            "resources": {"gpus": gpus, "cpu": "1", "memory": "1Gi"},
            "nodePool": pool,
        },
    }


def queued(name: str) -> dict[str, Any]:
    manifest = job(name, 1, 0, "cpu")
    manifest["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team"}
    return manifest


# Kueue (started in the tier): a ClusterQueue with room for one 1-CPU worker, LocalQueue `team`.
KUEUE_OBJECTS = [
    {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
     "metadata": {"name": "default"}},
    {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "ml-demo"},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory"],
                    "flavors": [
                        {
                            "name": "default",
                            "resources": [
                                {"name": "cpu", "nominalQuota": "1"},
                                {"name": "memory", "nominalQuota": "4Gi"},
                            ],
                        }
                    ],
                }
            ],
        },
    },
    {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "team", "namespace": NAMESPACE},
        "spec": {"clusterQueue": "ml-demo"},
    },
]  # fmt: skip


def over_limit() -> dict[str, Any]:
    big = job("over-limit", 1, 0, "cpu")
    big["spec"]["resources"]["memory"] = "8Gi"
    return big


# Pods above 4Gi memory are forbidden in the namespace: the pod create of over-limit fails.
LIMIT_RANGE = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": {"name": "max-memory", "namespace": NAMESPACE},
    "spec": {"limits": [{"type": "Container", "max": {"memory": "4Gi"}}]},
}


def sweep() -> dict[str, Any]:
    """A small sweep whose kwok trials exit 0 after 3s with a final test_accuracy: the sweep
    panels (trials by state, best value) get data."""
    summary = '{"exitReason": "completed", "metrics": {"test_accuracy": 0.9}}'
    annotations = {
        "kwok.trainforge.io/exit-code": "0",
        "kwok.trainforge.io/run-seconds": "3",
        "kwok.trainforge.io/termination-message": summary,
    }
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingSweep",
        "metadata": {"name": "lr-sweep", "namespace": NAMESPACE},
        "spec": {
            "objective": {"metric": "test_accuracy"},
            "parameters": [{"name": "lr", "type": "float", "low": 0.001, "high": 0.1, "log": True}],
            "algorithm": {"type": "random"},
            "maxTrials": 3,
            "parallelTrials": 2,
            "trialTemplate": {
                "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
                "podTemplate": {"annotations": annotations},
            },
        },
    }


def flaky() -> dict[str, Any]:
    """A job whose kwok workers report progress (step 12, resumed from 8) and exit 75 after 15 s
    in every attempt; a failure-policy rule restarts it without counting, so it restarts and
    recovers over and over (restarts by kind, time to recover, steps redone)."""
    progress = {"step": 12, "totalSteps": 100, "resumedFromStep": 8}
    annotations = {
        "kwok.trainforge.io/exit-code": "75",
        "kwok.trainforge.io/run-seconds": "15",
        "trainforge.io/progress": json.dumps(progress),
    }
    flaky = job("flaky", 1, 0, "cpu")
    flaky["spec"]["podTemplate"] = {"annotations": annotations}
    flaky["spec"]["runPolicy"] = {
        "restartBackoffSeconds": 1,
        "maxRestartBackoffSeconds": 2,
        "failurePolicy": {
            "rules": [
                {"action": "RestartIgnoringMax", "onExitCodes": {"operator": "In", "values": [75]}}
            ]
        },
    }
    return flaky


SCENARIO = [
    flaky(),
    # Same namespace/name as the local run (live_run.short_manifest): per-job operator series.
    job("digits-ddp", 2, 0, "cpu"),
    job("starts-a", 2, 0, "cpu"),
    job("starts-b", 1, 0, "cpu"),
    # 4 nodes x 8 GPUs on a pool of 2 x 8: half the gang never schedules.
    job("gpu-starved", 4, 8, "gpu"),
    job("unknown-pool", 1, 0, "no-such-pool"),
    over_limit(),
    sweep(),
    # Admitted by Kueue (quota for one): queued-a waits a moment (queued time), queued-b stays.
    queued("queued-a"),
    queued("queued-b"),
]


def _wait(what: str, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            return b"trainforge_jobs" in resp.read()
    except OSError:
        return False


def retraining(data_dir: Path) -> dict[str, Any]:
    """A TrainingSchedule that retrains on new data in `data_dir`: its first run starts at once,
    its kwok pods finish with a score above the baseline, and it is promoted (schedule series)."""
    summary = {
        "exitReason": "completed",
        "metrics": {"test_accuracy": 0.95, "baseline_test_accuracy": 0.1},
    }
    annotations = {
        "kwok.trainforge.io/exit-code": "0",
        "kwok.trainforge.io/run-seconds": "2",
        "kwok.trainforge.io/termination-message": json.dumps(summary),
    }
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingSchedule",
        "metadata": {"name": "retrain", "namespace": NAMESPACE},
        "spec": {
            "newData": {"by": "mtime", "minIntervalSeconds": 5},
            "jobTemplate": {
                "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
                "data": {"uri": data_dir.as_uri()},
                "podTemplate": {"annotations": annotations},
            },
        },
    }


SUBMIT_SPACING_S = 8.0
# How long the whole scenario takes to submit: the training run's Prometheus window must cover it.
SCENARIO_SECONDS = len(SCENARIO) * SUBMIT_SPACING_S


def _submit(cp: Any, say: Callable[[str], None], spacing_s: float = SUBMIT_SPACING_S) -> None:
    for manifest in SCENARIO:
        try:
            cp.apply(manifest)
        except Exception as exc:  # the tier may be stopping; the test sees the missing data
            say(f"[operator-live] could not submit {manifest['metadata']['name']}: {exc}")
            return
        time.sleep(spacing_s)


@contextlib.contextmanager
def live_operator(workdir: Path, say: Callable[[str], None] = print) -> Iterator[str]:
    """Start the tier and the operator, submit SCENARIO; yield the metrics target host:port."""
    tier = _controlplane_module()
    workdir.mkdir(parents=True, exist_ok=True)
    with tier.running_control_plane(say=say) as cp:
        cp.kubectl("apply", "--server-side", "-f", str(CRD_FILE), check=True)
        cp.kubectl("apply", "--server-side", "-f", str(SWEEP_CRD_FILE), check=True)
        cp.kubectl(
            "wait", "--for=condition=Established", "crd/trainingjobs.trainforge.io", check=True
        )
        cp.kubectl("apply", "--server-side", "-f", str(SCHEDULE_CRD_FILE), check=True)
        cp.kubectl(
            "wait", "--for=condition=Established", "crd/trainingsweeps.trainforge.io", check=True
        )
        cp.kubectl(
            "wait", "--for=condition=Established", "crd/trainingschedules.trainforge.io", check=True
        )
        cp.kubectl("create", "namespace", NAMESPACE, check=True)
        cp.apply(LIMIT_RANGE)
        cp.start_kueue()
        for obj in KUEUE_OBJECTS:
            cp.apply(obj)
        data_dir = workdir / "retrain-data"
        data_dir.mkdir(exist_ok=True)
        (data_dir / "part-0.csv").write_text("0,1\n")
        metrics_port = free_ports(1)
        health_port = free_ports(1)
        config_file = workdir / "config.yaml"
        config_file.write_text(yaml.safe_dump(chart_config(metrics_port, health_port)))
        log = (workdir / "operator.log").open("wb")
        env = {**cp.env(), "TRAINFORGE_CONFIG": str(config_file)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainforge_operator.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait("operator /metrics", lambda: _metrics_up(metrics_port), 60)
            cp.apply(retraining(data_dir))
            # Spread the submissions so the rate panels show them arriving over time.
            submitter = threading.Thread(target=_submit, args=(cp, say), daemon=True)
            submitter.start()
            yield f"127.0.0.1:{metrics_port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

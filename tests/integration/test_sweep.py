# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""TrainingSweep against a real control plane with kwok nodes: trials are real TrainingJobs.

Kwok pods do not train, so the test plays rank 0: it reports progress through the pod annotation
`trainforge.io/progress` (the TrainingJob controller polls it into status.metricHistory, exactly
as it polls /progress in production) and ends a pod with an exit code and a termination message
carrying the final metrics. Everything else is the real operator: the TrainingJob controller and
the sweep controller with its Optuna study rebuilt from the cluster on every pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from operator_fixture import (  # noqa: F401  (fixtures)
    GROUP,
    VERSION,
    Cluster,
    OperatorHandle,
    kube_client,
    tf_operator,
    trainforge_crd,
    wait_for,
)
from tf_controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
SWEEP_CRD = REPO / "crds" / "trainingsweeps.trainforge.io.yaml"
SWEEPS = "trainingsweeps"
EXIT = "kwok.trainforge.io/exit-code"
MESSAGE = "kwok.trainforge.io/termination-message"


@pytest.fixture(scope="session")
def sweep_crd(control_plane: ControlPlane, trainforge_crd: None) -> None:
    proc = control_plane.kubectl("apply", "-f", str(SWEEP_CRD))
    assert proc.returncode == 0, proc.stderr
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=120s",
        "crd/trainingsweeps.trainforge.io", check=True,
    )  # fmt: skip


def sweep(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "objective": {
            "metric": "test_accuracy",
            "direction": "maximize",
            "intermediateMetric": "val_accuracy",
        },
        "parameters": [
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            {"name": "hidden", "type": "int", "low": 16, "high": 128, "step": 16},
        ],
        "algorithm": {"type": "random", "seed": 7},
        "earlyStopping": {"type": "median", "startupTrials": 1},
        "maxTrials": 4,
        "parallelTrials": 2,
        "trialTemplate": {
            "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
            "hyperparameters": {"epochs": 3},
            "runPolicy": {"maxRestarts": 0},
        },
    }
    body.update(spec or {})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingSweep",
        "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": "team-a"}},
        "spec": body,
    }


def apply(cp: ControlPlane, ns: str, manifest: dict[str, Any]) -> Any:
    return cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


class Sweeps(Cluster):
    def sweep_status(self, name: str) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, SWEEPS, name)
        return body.get("status") or {}

    def trials(self, sweep: str) -> dict[str, dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            "trainingjobs",
            label_selector=f"trainforge.io/sweep-name={sweep}",
        )["items"]
        return {t["metadata"]["name"]: t for t in items}

    def report(self, job: str, step: int, val_accuracy: float) -> None:
        """Rank 0 reports progress; wait until the job's status has it."""
        progress = {"step": step, "totalSteps": 30, "metrics": {"val_accuracy": val_accuracy}}
        wait_for(f"{job} running", lambda: self.phase(job) == "Running")
        self.annotate_pod(f"{job}-worker-0", {"trainforge.io/progress": json.dumps(progress)})
        wait_for(
            f"{job} status at step {step}",
            lambda: any(p["step"] == step for p in self.status(job).get("metricHistory") or []),
        )

    def finish(self, job: str, test_accuracy: float) -> None:
        summary = {"exitReason": "completed", "metrics": {"test_accuracy": test_accuracy}}
        self.annotate_pod(f"{job}-worker-0", {EXIT: "0", MESSAGE: json.dumps(summary)})
        self.wait_phase(job, "Succeeded")

    def sweep_events(self, name: str) -> list[str]:
        items = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name},involvedObject.kind=TrainingSweep"
        ).items
        return [e.reason for e in items]


def test_sweep_runs_parallel_trials_prunes_and_survives_restarts(
    control_plane: ControlPlane,
    namespace: str,
    kube_client: Any,
    sweep_crd: None,
    tf_operator: OperatorHandle,
) -> None:
    c = Sweeps(kube_client, namespace)
    assert apply(control_plane, namespace, sweep("hp")).returncode == 0

    trials = wait_for("two trials", lambda: t if len(t := c.trials("hp")) == 2 else None)
    assert set(trials) == {"hp-0", "hp-1"}
    first = trials["hp-0"]
    hp = first["spec"]["hyperparameters"]
    assert isinstance(hp["lr"], float)
    assert isinstance(hp["hidden"], int)
    assert hp["epochs"] == 3
    assert first["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert first["metadata"]["ownerReferences"][0]["kind"] == "TrainingSweep"

    # Killed mid-sweep, twice: the restarted operator rebuilds the same study, adds nothing.
    tf_operator.stop()
    tf_operator.start()
    tf_operator.stop()
    tf_operator.start()
    wait_for("the sweep's status", lambda: c.sweep_status("hp").get("trials", {}).get("total"))
    assert set(c.trials("hp")) == {"hp-0", "hp-1"}
    assert {n: t["spec"] for n, t in c.trials("hp").items()} == {
        n: t["spec"] for n, t in trials.items()
    }

    # hp-0 learns and finishes; hp-1 reports a poor value at the same steps and is pruned.
    c.report("hp-0", 10, 0.80)
    c.report("hp-0", 20, 0.90)
    c.finish("hp-0", 0.93)
    c.report("hp-1", 10, 0.10)
    c.wait_phase("hp-1", "Stopped")
    stopped = c.status("hp-1")
    assert any(x["type"] == "Stopped" and x["reason"] == "Pruned" for x in stopped["conditions"])

    # Freed slots are refilled up to parallelTrials, never beyond maxTrials.
    now = wait_for("four trials", lambda: t if len(t := c.trials("hp")) == 4 else None)
    assert set(now) == {"hp-0", "hp-1", "hp-2", "hp-3"}
    tf_operator.stop()
    tf_operator.start()
    for job, acc in (("hp-2", 0.95), ("hp-3", 0.91)):
        c.report(job, 10, 0.85)
        c.finish(job, acc)

    status = wait_for(
        "the sweep to complete",
        lambda: s if (s := c.sweep_status("hp")).get("phase") == "Completed" else None,
    )
    assert set(c.trials("hp")) == {"hp-0", "hp-1", "hp-2", "hp-3"}
    counts = status["trials"]
    assert (counts["succeeded"], counts["pruned"], counts["failed"]) == (3, 1, 0)
    assert counts["done"] == "4/4"
    assert status["bestTrial"]["name"] == "hp-2"
    assert status["bestTrial"]["value"] == pytest.approx(0.95)
    assert [t["name"] for t in status["leaderboard"]] == ["hp-2", "hp-0", "hp-3"]
    # Events are posted after the status write, best effort: one posted just before a kill can be
    # lost, so only their presence is asserted.
    wait_for(
        "sweep events",
        lambda: (
            r
            if {"TrialCreated", "TrialPruned", "NewBest", "Completed"}
            <= set(r := c.sweep_events("hp"))
            else None
        ),
    )
    table = control_plane.kubectl("get", "tsw", "-n", namespace, check=True).stdout
    for column in ("random", "Completed", "4/4", "hp-2"):
        assert column in table


def _spec(**changes: Any) -> dict[str, Any]:
    spec = sweep("x")["spec"]
    spec.update(changes)
    return spec


INVALID = [
    pytest.param({"parameters": []}, "the search space is empty", id="empty-space"),
    pytest.param(
        {"parameters": [{"name": "opt", "type": "categorical", "choices": []}]},
        "choices in body should have at least 1 items",
        id="categorical-without-choices",
    ),
    pytest.param(
        {"parameters": [{"name": "lr", "type": "float", "low": 0, "high": 1, "log": True}]},
        "a log-scale range must not include 0",
        id="log-range-with-zero",
    ),
    pytest.param(
        {"algorithm": {"type": "grid"}},
        "grid search needs a step on every float parameter",
        id="grid-continuous",
    ),
    pytest.param(
        {"maxTrials": 2, "parallelTrials": 3},
        "parallelTrials must be <= spec.maxTrials",
        id="parallel-over-max",
    ),
    pytest.param(
        {"objective": {"metric": "bleu"}},
        "never reports that metric",
        id="metric-the-trainer-never-reports",
    ),
    pytest.param(
        {"trialTemplate": {"command": ["python"], "parallelism": {"layout": "tensor"}}},
        "layout tensor needs tensorParallel >= 2",
        id="template-breaks-a-trainingjob-rule",
    ),
]


@pytest.mark.parametrize(("change", "fragment"), INVALID)
def test_invalid_sweeps_are_rejected_at_apply(
    control_plane: ControlPlane,
    namespace: str,
    sweep_crd: None,
    change: dict[str, Any],
    fragment: str,
) -> None:
    manifest = sweep("bad")
    manifest["spec"].update(change)
    proc = apply(control_plane, namespace, manifest)
    assert proc.returncode != 0, "accepted"
    assert fragment in proc.stderr, proc.stderr


def test_valid_sweep_is_accepted(
    control_plane: ControlPlane, namespace: str, sweep_crd: None
) -> None:
    proc = apply(control_plane, namespace, sweep("good"))
    assert proc.returncode == 0, proc.stderr


def test_the_operator_uploads_the_report_next_to_the_artifacts(
    control_plane: ControlPlane,
    namespace: str,
    kube_client: Any,
    sweep_crd: None,
    tf_operator: OperatorHandle,
    tmp_path: Path,
) -> None:
    """A new best and the end of the sweep each write report.html at
    <artifacts.uri>/<ns>/<sweep>/; a location that cannot be written is a condition and a
    Warning, and the sweep still completes."""
    c = Sweeps(kube_client, namespace)
    good, bad = sweep("rep"), sweep("rep-bad")
    for manifest, where in ((good, str(tmp_path)), (bad, "/dev/null/cannot")):
        manifest["spec"].update(maxTrials=2, earlyStopping={"type": "none"})
        manifest["spec"]["trialTemplate"]["artifacts"] = {"uri": where}
        assert apply(control_plane, namespace, manifest).returncode == 0

    report = tmp_path / namespace / "rep" / "report.html"
    wait_for("the trials", lambda: len(c.trials("rep")) == len(c.trials("rep-bad")) == 2)
    c.report("rep-0", 10, 0.8)
    c.finish("rep-0", 0.9)
    # The first report imports plotly (seconds on a busy machine): a longer wait.
    first = wait_for("the first report", lambda: c.sweep_status("rep").get("report"), timeout=180)
    assert first["uri"] == str(report)
    assert (first["bestTrial"], first["final"]) == ("rep-0", False)
    assert report.read_text().startswith("<!doctype html>")

    c.report("rep-1", 10, 0.85)
    c.finish("rep-1", 0.95)
    final = wait_for(
        "the final report",
        lambda: r if (r := c.sweep_status("rep").get("report", {})).get("final") else None,
    )
    assert (final["bestTrial"], final["finishedTrials"]) == ("rep-1", 2)
    page = report.read_text()
    for title in ("Optimisation history", "Parallel coordinates", "Parameter importance",
                  "Intermediate values", "Trials"):  # fmt: skip
        assert f"<h2>{title}" in page
    assert page.count("<tr>") == 3
    wait_for("ReportUploaded events", lambda: c.sweep_events("rep").count("ReportUploaded") >= 2)

    for job, acc in (("rep-bad-0", 0.9), ("rep-bad-1", 0.8)):
        c.report(job, 10, 0.8)
        c.finish(job, acc)

    def report_condition() -> dict[str, Any] | None:
        conditions = c.sweep_status("rep-bad").get("conditions", [])
        return next((x for x in conditions if x["type"] == "ReportUploaded"), None)

    condition = wait_for("the failed upload's condition", report_condition)
    assert (condition["status"], condition["reason"]) == ("False", "UploadFailed")
    assert "/dev/null/cannot" in condition["message"]
    wait_for(
        "the bad sweep completes", lambda: c.sweep_status("rep-bad").get("phase") == "Completed"
    )
    assert "ReportUploadFailed" in c.sweep_events("rep-bad")

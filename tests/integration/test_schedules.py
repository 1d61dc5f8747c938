# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""TrainingSchedules against a real control plane with kwok nodes.

The schedule controller runs on a clock 30x faster than real time (a minute passes every two
seconds), so an every-minute schedule is tested in seconds; everything else is real: the API
server (CRD schema and CEL), the TrainingJob controller running each run's kwok pods to
completion, the garbage collector, and file:// storage for the data and the champion pointer.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_fixture import (  # noqa: F401  (fixtures)
    Cluster,
    OperatorHandle,
    kube_client,
    operator_config_for,
    trainforge_crd,
    wait_for,
)
from tf_controlplane import ControlPlane

GROUP, VERSION, SCHEDULES = "trainforge.io", "v1alpha1", "trainingschedules"
EXIT = "kwok.trainforge.io/exit-code"
RUN_SECONDS = "kwok.trainforge.io/run-seconds"
MESSAGE = "kwok.trainforge.io/termination-message"
SPEED = 30.0


class FastClock:
    """Real time, SPEED times faster, from a fixed start (shared across operator restarts)."""

    def __init__(self, speed: float) -> None:
        self.start = dt.datetime.now(dt.UTC)
        self.speed = speed

    def __call__(self) -> dt.datetime:
        return self.start + (dt.datetime.now(dt.UTC) - self.start) * self.speed


@pytest.fixture
def fast_operator(
    kube_client: Any, trainforge_crd: None, namespace: str
) -> Iterator[OperatorHandle]:
    handle = OperatorHandle(
        config=operator_config_for(namespace),
        api_client=kube_client,
        schedule_clock=FastClock(SPEED),
        schedule_speed=SPEED,
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def finishing(metric: float, baseline: float, seconds: int = 1) -> dict[str, str]:
    """Pod annotations: kwok ends the worker after `seconds` with these results."""
    summary = {
        "exitReason": "completed",
        "metrics": {"test_accuracy": metric, "baseline_test_accuracy": baseline},
    }
    return {EXIT: "0", RUN_SECONDS: str(seconds), MESSAGE: json.dumps(summary)}


def schedule(name: str, pod_annotations: dict[str, str] | None = None, **spec: Any) -> Any:
    template: dict[str, Any] = {
        "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
        "podTemplate": {"annotations": pod_annotations or {}},
        **spec.pop("jobTemplate", {}),
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingSchedule",
        "metadata": {"name": name},
        "spec": {"jobTemplate": template, **spec},
    }


class Schedules(Cluster):
    def apply(self, cp: ControlPlane, manifest: dict[str, Any]) -> Any:
        return cp.kubectl("apply", "-n", self.ns, "-f", "-", input=json.dumps(manifest))

    def sched_status(self, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, SCHEDULES, name)
        return dict(obj.get("status") or {})

    def runs(self, name: str) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "trainingjobs", label_selector=f"trainforge.io/schedule={name}"
        )["items"]
        return [i for i in items if not i["metadata"].get("deletionTimestamp")]

    def schedule_events(self, name: str) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(
            self.ns,
            field_selector=f"involvedObject.name={name},involvedObject.kind=TrainingSchedule",
        ).items
        return [(e.reason, e.message) for e in items]

    def wait_event(self, name: str, reason: str, timeout: float = 40) -> list[tuple[str, str]]:
        return wait_for(
            f"a {reason} Event on {name}",
            lambda: [e for e in self.schedule_events(name) if e[0] == reason],
            timeout,
        )


def minute_of(run: dict[str, Any]) -> int:
    return int(run["metadata"]["name"].rsplit("-", 1)[1])


def test_every_minute_schedule_runs_promotes_and_trims_history(
    control_plane: ControlPlane,
    namespace: str,
    kube_client: Any,
    fast_operator: OperatorHandle,
    tmp_path: Path,
) -> None:
    c = Schedules(kube_client, namespace)
    manifest = schedule(
        "minutely",
        finishing(0.9, 0.1),
        schedule="* * * * *",
        concurrencyPolicy="Allow",
        successfulRunsHistoryLimit=2,
        jobTemplate={"artifacts": {"uri": tmp_path.as_uri()}},
    )
    assert c.apply(control_plane, manifest).returncode == 0
    promoted = c.wait_event("minutely", "ModelPromoted")
    # A later run with the same score ties the champion and is not promoted.
    c.wait_event("minutely", "NotPromoted")
    status = c.sched_status("minutely")
    champion = status["champion"]
    assert champion["metric"] == 0.9
    assert champion["run"] in promoted[0][1]
    assert champion["artifactsUri"] == f"{tmp_path.as_uri()}/{namespace}/{champion['run']}"
    pointer = json.loads((tmp_path / namespace / "minutely" / "champion.json").read_text())
    assert pointer["run"] == champion["run"]
    assert pointer["baseline"] == 0.1
    wait_for(
        "four runs created",
        lambda: len([r for r, _ in c.schedule_events("minutely") if r == "RunCreated"]) >= 4,
    )

    def trimmed() -> bool:
        phases = [(r.get("status") or {}).get("phase") for r in c.runs("minutely")]
        return phases.count("Succeeded") <= 2 and "RunCreated" in {
            r for r, _ in c.schedule_events("minutely")
        }

    # History: at most two succeeded runs are kept once their verdicts are stored.
    wait_for("history trimmed to 2 succeeded runs", trimmed, timeout=30)
    deleted = wait_for("a trimmed run gone", lambda: len(c.runs("minutely")) < 4 or None)
    assert deleted
    runs = c.sched_status("minutely")["runs"]
    assert len([r for r in runs if r["result"] in ("Promoted", "NotPromoted")]) <= 2
    table = control_plane.kubectl("get", "tsc", "-n", namespace, check=True).stdout
    assert "CHAMPION METRIC" in table
    assert "0.9" in table


def test_forbid_skips_while_a_run_is_active(
    control_plane: ControlPlane, namespace: str, kube_client: Any, fast_operator: OperatorHandle
) -> None:
    c = Schedules(kube_client, namespace)
    manifest = schedule("forbid", schedule="* * * * *", concurrencyPolicy="Forbid")
    assert c.apply(control_plane, manifest).returncode == 0  # its pods never finish
    skipped = c.wait_event("forbid", "RunSkipped")
    assert "still active and concurrencyPolicy is Forbid" in skipped[0][1]
    time.sleep(3)  # more minutes pass on the schedule's clock
    assert len(c.runs("forbid")) == 1
    assert len(c.sched_status("forbid")["active"]) == 1


def test_restarted_operator_catches_up_once(
    control_plane: ControlPlane, namespace: str, kube_client: Any, fast_operator: OperatorHandle
) -> None:
    c = Schedules(kube_client, namespace)
    # Every two minutes on the fast clock: every four seconds.
    manifest = schedule(
        "catchup", finishing(0.9, 0.1), schedule="*/2 * * * *", concurrencyPolicy="Allow"
    )
    assert c.apply(control_plane, manifest).returncode == 0
    wait_for("a first run", lambda: c.runs("catchup"), timeout=30)
    fast_operator.stop()
    before = {minute_of(r) for r in c.runs("catchup")}
    down_from = fast_operator.schedule_clock()
    time.sleep(10)  # 5 fake minutes: two or three fire times pass while the operator is down
    down_to = fast_operator.schedule_clock()
    fast_operator.start()

    # The Event names the fire time caught up, the latest missed while the operator was down
    # (an earlier RunsMissed, from before the stop, names an earlier one).
    def caught_up_after_restart() -> int | None:
        for reason, message in c.schedule_events("catchup"):
            found = re.search(r"only the latest \(([^)]+)\) is caught up", message)
            if reason != "RunsMissed" or not found:
                continue
            seconds = dt.datetime.fromisoformat(found[1].replace("Z", "+00:00")).timestamp()
            if seconds // 60 > down_from.timestamp() // 60:
                return int(seconds // 60)
        return None

    caught_up = wait_for("a RunsMissed Event after the restart", caught_up_after_restart, 40)
    after = {minute_of(r) for r in c.runs("catchup")} - before
    # Every earlier fire time missed while down starts nothing; regular runs after the one
    # caught up may already exist (the clock runs 30x).
    during = {m for m in after if down_from.timestamp() // 60 < m <= caught_up}
    assert during == {caught_up}, (sorted(before), sorted(after), down_from, down_to)


def test_new_data_on_a_file_uri_triggers_a_run(
    control_plane: ControlPlane,
    namespace: str,
    kube_client: Any,
    fast_operator: OperatorHandle,
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-0.csv").write_text("1,2\n")
    c = Schedules(kube_client, namespace)
    manifest = schedule(
        "ondata",
        finishing(0.9, 0.1),
        newData={"by": "mtime", "minIntervalSeconds": 30},
        jobTemplate={"data": {"uri": data.as_uri()}},
    )
    assert c.apply(control_plane, manifest).returncode == 0
    first = wait_for("a first run", lambda: c.runs("ondata"), timeout=30)
    fp1 = first[0]["metadata"]["annotations"]["trainforge.io/data-fingerprint"]
    assert fp1.startswith("mtime:")
    assert first[0]["metadata"]["annotations"]["trainforge.io/trigger"] == "newData"
    c.wait_event("ondata", "ModelPromoted")
    time.sleep(3)
    assert len(c.runs("ondata")) == 1  # the same data starts nothing
    (data / "part-1.csv").write_text("3,4\n")
    runs = wait_for(
        "a run for the new data", lambda: r if len(r := c.runs("ondata")) == 2 else None
    )
    fps = {r["metadata"]["annotations"]["trainforge.io/data-fingerprint"] for r in runs}
    assert len(fps) == 2
    # The run is created before the status that records its data is written: wait for it.
    wait_for(
        "the status to record the new data",
        lambda: c.sched_status("ondata")["dataFingerprint"] in fps - {fp1},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"schedule": "every night"}, "spec.schedule is not a cron expression"),
        (
            {"schedule": "@daily", "failedRunsHistoryLimit": -1},
            "spec.failedRunsHistoryLimit must not be negative",
        ),
        ({}, "spec: set schedule"),
        (
            {"schedule": "@daily", "timeZone": "Central European"},
            "spec.timeZone is not a time zone",
        ),
    ],
)
def test_bad_schedules_are_rejected_at_apply(
    control_plane: ControlPlane,
    namespace: str,
    trainforge_crd: None,
    spec: dict[str, Any],
    fragment: str,
) -> None:
    result = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(schedule("bad", **spec))
    )
    assert result.returncode != 0
    assert fragment in result.stderr


def test_unknown_zone_is_an_invalid_spec_condition(
    control_plane: ControlPlane, namespace: str, kube_client: Any, fast_operator: OperatorHandle
) -> None:
    c = Schedules(kube_client, namespace)
    manifest = schedule("zone", schedule="@daily", timeZone="Mars/Olympus_Mons")
    assert c.apply(control_plane, manifest).returncode == 0
    status = wait_for("the InvalidSpec condition", lambda: c.sched_status("zone").get("conditions"))
    (cond,) = [x for x in status if x["type"] == "InvalidSpec"]
    assert cond["status"] == "True"
    assert "unknown time zone 'Mars/Olympus_Mons'" in cond["message"]
    assert c.runs("zone") == []


def test_the_example_passes_the_api_server(
    control_plane: ControlPlane, namespace: str, trainforge_crd: None
) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "digits-schedule.yaml"
    result = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example))
    assert result.returncode == 0, result.stderr


def test_an_unwritable_pointer_holds_the_promotion_back(
    control_plane: ControlPlane, namespace: str, kube_client: Any, fast_operator: OperatorHandle
) -> None:
    c = Schedules(kube_client, namespace)
    manifest = schedule(
        "nopointer",
        finishing(0.9, 0.1),
        newData={"by": "mtime", "minIntervalSeconds": 30},
        jobTemplate={
            "data": {"uri": "file:///etc/hostname"},
            "artifacts": {"uri": "file:///proc/x"},
        },
    )
    assert c.apply(control_plane, manifest).returncode == 0
    failed = c.wait_event("nopointer", "PointerWriteFailed")
    assert "cannot write the champion pointer file:///proc/x/" in failed[0][1]
    assert "champion" not in c.sched_status("nopointer")
    assert not [e for e in c.schedule_events("nopointer") if e[0] == "ModelPromoted"]

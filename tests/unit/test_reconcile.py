"""The pure reconcile decision, one observed state at a time."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from trainforge_operator.config import OperatorConfig
from trainforge_operator.plan import Observed, Plan
from trainforge_operator.reconcile import decide
from trainforge_operator.status import status_dict

from .conftest import T0, make_job, make_pod


def run(
    config: OperatorConfig,
    job: dict[str, Any],
    pods: list[dict[str, Any]] | None = None,
    seconds: float = 0,
    progress: dict[str, Any] | None = None,
    children: bool = True,
) -> Plan:
    obs = Observed(
        body=job,
        pods=pods or [],
        has_service=children,
        has_configmap=children,
        now=T0 + dt.timedelta(seconds=seconds),
        progress=progress,
    )
    return decide(obs, config)


def apply(job: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The job as the next reconcile sees it after the status write."""
    return dict(job, status=status_dict(plan.status))


def cond(plan: Plan, type_: str) -> str | None:
    return next((c.status for c in plan.status.conditions if c.type == type_), None)


def test_new_job_creates_children_once(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}})
    plan = run(config, job, children=False)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in plan.create]
    assert kinds == [("Service", "digits"), ("ConfigMap", "digits-context"),
                     ("Pod", "digits-worker-0"), ("Pod", "digits-worker-1")]  # fmt: skip
    assert plan.status.phase == "Pending"
    assert cond(plan, "Created") == "True"
    assert [e.reason for e in plan.events] == ["Created"]
    # Next pass with the pods observed: nothing to create, no repeated event.
    again = run(config, apply(job, plan), [make_pod(0, "Pending"), make_pod(1, "Pending")], 1)
    assert again.create == []
    assert again.events == []


def test_partial_creation_is_completed_without_duplicates(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 3}}, status={"phase": "Pending"})
    plan = run(config, job, [make_pod(0, "Pending")])
    assert [o["metadata"]["name"] for o in plan.create] == ["digits-worker-1", "digits-worker-2"]


def test_running_then_success_with_results(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}}, status={"phase": "Starting"})
    plan = run(config, job, [make_pod(0), make_pod(1)], 5)
    assert plan.status.phase == "Running"
    assert plan.time_to_running == 5
    assert cond(plan, "PodsReady") == "True"
    summary = json.dumps(
        {
            "exitReason": "done",
            "step": 120,
            "totalSteps": 120,
            "resumedFromStep": 50,
            "metrics": {"test_accuracy": 0.97},
            "artifacts": {"uri": "s3://b/m/", "files": 3, "bytes": 1024},
        }
    )
    pods = [make_pod(0, "Succeeded", exit_code=0, message=summary),
            make_pod(1, "Succeeded", exit_code=0)]  # fmt: skip
    done = run(config, apply(job, plan), pods, 60)
    assert done.status.phase == "Succeeded"
    assert done.status.results == {"test_accuracy": 0.97}
    assert done.status.artifacts is not None
    assert done.status.artifacts.files == 3
    assert done.status.progress is not None  # the final word, though never polled while running
    assert (done.status.progress.step, done.status.progress.percent) == (120, 100.0)
    assert done.status.progress.resumed_from_step == 50
    assert done.status.completion_time == "2026-01-01T12:01:00Z"
    assert cond(done, "Succeeded") == "True"
    assert [e.reason for e in done.events] == ["Succeeded"]


def test_one_worker_done_is_not_success(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}}, status={"phase": "Running"})
    plan = run(config, job, [make_pod(0, "Succeeded", exit_code=0), make_pod(1)])
    assert plan.status.phase == "Running"


def test_retryable_failure_restarts_the_gang_after_backoff(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}, "runPolicy": {"restartBackoffSeconds": 10}},
                   status={"phase": "Running"})  # fmt: skip
    pods = [make_pod(0), make_pod(1, "Failed", exit_code=137)]
    plan = run(config, job, pods)
    assert plan.status.phase == "Restarting"
    assert plan.status.restarts == 1
    assert sorted(plan.delete_pods) == ["digits-worker-0", "digits-worker-1"]
    assert plan.status.last_failure is not None
    assert plan.status.last_failure.pod == "digits-worker-1"
    assert plan.status.last_failure.exit_code == 137
    assert plan.status.last_failure.signal == 9
    assert plan.status.restart_after == "2026-01-01T12:00:10Z"
    assert plan.restarted
    assert [e.reason for e in plan.events] == ["Restarting"]
    job = apply(job, plan)
    # Old pods still terminating: never create attempt 1 while attempt 0 pods exist.
    waiting = run(config, job, [make_pod(0, "Running")], 20)
    assert waiting.create == []
    assert waiting.status.phase == "Restarting"
    # Gone but backoff not elapsed.
    early = run(config, job, [], 5)
    assert early.create == []
    assert early.requeue_after == 5
    # Gone and backoff elapsed: attempt 1.
    later = run(config, job, [], 11)
    assert later.status.attempt == 1
    assert [p["metadata"]["labels"]["trainforge.io/attempt"] for p in later.create] == ["1", "1"]
    assert cond(later, "Restarting") == "False"


def test_permanent_failure_names_pod_container_and_code(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}}, status={"phase": "Running"})
    plan = run(config, job, [make_pod(0, "Failed", exit_code=1), make_pod(1)])
    assert plan.status.phase == "Failed"
    assert "pod digits-worker-0 container worker exited with code 1" in plan.status.message
    assert plan.status.last_failure is not None
    assert plan.status.last_failure.exit_code == 1
    assert plan.delete_pods == ["digits-worker-1"]  # cleanPodPolicy Running
    assert plan.failed_reason == "WorkerFailed"


def test_max_restarts_exhausted(config: OperatorConfig) -> None:
    job = make_job({"runPolicy": {"maxRestarts": 2}}, status={"phase": "Running", "restarts": 2})
    plan = run(config, job, [make_pod(0, "Failed", exit_code=75)])
    assert plan.status.phase == "Failed"
    assert plan.failed_reason == "MaxRestartsExceeded"
    assert "maxRestarts=2" in plan.status.message


def test_lost_pod_while_running_restarts(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}}, status={"phase": "Running"})
    plan = run(config, job, [make_pod(0)])
    assert plan.status.phase == "Restarting"
    assert plan.status.last_failure is not None
    assert plan.status.last_failure.reason == "PodDeleted"


def test_max_pending_names_the_short_resource(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}, "runPolicy": {"maxPendingSeconds": 30}},
                   status={"phase": "Pending"})  # fmt: skip
    pods = [make_pod(0, "Pending", scheduled=False), make_pod(1, "Pending", scheduled=False)]
    ok = run(config, job, pods, 20)
    assert ok.status.phase == "Pending"
    assert "Insufficient nvidia.com/gpu" in ok.status.message
    timed_out = run(config, job, pods, 31)
    assert timed_out.status.phase == "Failed"
    assert timed_out.failed_reason == "PendingTimeout"
    assert "Insufficient nvidia.com/gpu" in timed_out.status.message
    assert sorted(timed_out.delete_pods) == ["digits-worker-0", "digits-worker-1"]


def test_suspend_and_resume(config: OperatorConfig) -> None:
    job = make_job({"runPolicy": {"suspend": True}}, status={"phase": "Running"})
    plan = run(config, job, [make_pod(0)])
    assert plan.status.phase == "Suspended"
    assert plan.delete_pods == ["digits-worker-0"]
    assert cond(plan, "Suspended") == "True"
    assert plan.create == []
    resumed_job = apply(make_job({"runPolicy": {"suspend": False}}), plan)
    resumed = run(config, resumed_job, [], 30)
    assert resumed.status.phase == "Pending"
    assert cond(resumed, "Suspended") == "False"
    assert [p["metadata"]["name"] for p in resumed.create] == ["digits-worker-0"]
    assert "Resumed" in [e.reason for e in resumed.events]


def test_invalid_spec_fails_without_crashing(config: OperatorConfig) -> None:
    plan = run(config, make_job({"nodePool": "tpu"}), children=False)
    assert plan.status.phase == "Failed"
    assert cond(plan, "InvalidSpec") == "True"
    assert "spec.nodePool 'tpu' is not configured" in plan.status.message
    assert plan.create == []


def test_ttl_deletes_the_finished_job(config: OperatorConfig) -> None:
    job = make_job(
        {"runPolicy": {"ttlSecondsAfterFinished": 60}},
        status={"phase": "Succeeded", "completionTime": "2026-01-01T12:00:00Z"},
    )
    assert run(config, job, [], 30).requeue_after == 30
    assert run(config, job, [], 61).delete_job


def test_active_deadline(config: OperatorConfig) -> None:
    job = make_job({"runPolicy": {"activeDeadlineSeconds": 100}},
                   status={"phase": "Running", "startTime": "2026-01-01T12:00:00Z"})  # fmt: skip
    assert run(config, job, [make_pod(0)], 50).status.phase == "Running"
    late = run(config, job, [make_pod(0)], 101)
    assert late.status.phase == "Failed"
    assert late.failed_reason == "DeadlineExceeded"


def test_progress_is_recorded_and_stall_restarts(config: OperatorConfig) -> None:
    job = make_job({"runPolicy": {"progressTimeoutSeconds": 60}}, status={"phase": "Starting"})
    p1 = run(config, job, [make_pod(0)], 0, progress={"step": 5, "totalSteps": 100,
             "etaSeconds": 125, "metrics": {"loss": 0.5}})  # fmt: skip
    assert p1.status.progress is not None
    assert p1.status.progress.step == 5
    assert p1.status.progress.eta == "2m05s"
    assert p1.status.progress.metrics == {"loss": 0.5}
    job = apply(job, p1)
    still = run(config, job, [make_pod(0)], 50, progress={"step": 5})
    assert still.status.phase == "Running"
    assert cond(still, "Stalled") is None
    stalled = run(config, apply(job, still), [make_pod(0)], 61, progress={"step": 5})
    assert cond(stalled, "Stalled") == "True"
    assert stalled.status.phase == "Restarting"
    assert [e.reason for e in stalled.events] == ["Stalled", "Restarting"]


def test_stall_can_fail_the_job(config: OperatorConfig) -> None:
    job = make_job({"runPolicy": {"progressTimeoutSeconds": 10, "onStall": "fail"}},
                   status={"phase": "Running", "runningTime": "2026-01-01T12:00:00Z"})  # fmt: skip
    plan = run(config, job, [make_pod(0)], 11)
    assert plan.status.phase == "Failed"
    assert plan.failed_reason == "Stalled"


def test_steady_state_writes_nothing(config: OperatorConfig) -> None:
    job = make_job({}, status={"phase": "Starting"})
    first = run(config, job, [make_pod(0)], 1)
    job = apply(job, first)
    second = run(config, job, [make_pod(0)], 9)
    assert status_dict(second.status) == job["status"]
    assert second.events == []
    assert second.create == []
    assert second.delete_pods == []


def test_stale_attempt_pods_are_deleted(config: OperatorConfig) -> None:
    job = make_job({}, status={"phase": "Pending", "attempt": 1})
    plan = run(config, job, [make_pod(0, attempt=0)])
    assert plan.delete_pods == ["digits-worker-0"]
    assert plan.create == []


def test_child_rejected_by_the_api_server_is_an_invalid_spec(config: OperatorConfig) -> None:
    job = make_job({}, status={"phase": "Pending"})
    obs = Observed(
        body=job,
        pods=[make_pod(0, "Pending")],
        has_service=True,
        has_configmap=True,
        now=T0,
        rejected="Pod digits-worker-1: spec.volumes[2].name: Duplicate value",
    )
    plan = decide(obs, config)
    assert plan.status.phase == "Failed"
    assert cond(plan, "InvalidSpec") == "True"
    assert "Duplicate value" in plan.status.message
    assert plan.delete_pods == ["digits-worker-0"]


def test_waiting_container_reason_is_reported(config: OperatorConfig) -> None:
    job = make_job({"runPolicy": {"maxPendingSeconds": 60}}, status={"phase": "Pending"})
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}
    pod = make_pod(0, "Pending", containerStatuses=[{"name": "worker", "state": waiting}])
    plan = run(config, job, [pod], 10)
    assert plan.status.phase == "Starting"
    expected = "container worker is waiting: ImagePullBackOff (pull access denied)"
    assert expected in plan.status.message
    timed_out = run(config, job, [pod], 61)
    assert timed_out.failed_reason == "PendingTimeout"
    assert "ImagePullBackOff" in timed_out.status.message


def test_context_configmap_follows_spec_edits(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 3}}, status={"phase": "Suspended"})
    stale = {"context.json": '{"parallelism": {"nodes": 2}}'}
    obs = Observed(job, [], True, True, T0, configmap_data=stale)
    plan = decide(obs, config)
    assert [o["metadata"]["name"] for o in plan.update] == ["digits-context"]
    assert json.loads(plan.update[0]["data"]["context.json"])["parallelism"]["nodes"] == 3
    current = Observed(job, [], True, True, T0, configmap_data=plan.update[0]["data"])
    assert decide(current, config).update == []


def test_health_stop_reports_findings_from_the_termination_message(
    config: OperatorConfig,
) -> None:
    summary = json.dumps(
        {
            "exitReason": "health rule nan_loss fired",
            "findings": [
                {"rule": "nan_loss", "step": 12, "message": "loss is NaN", "action": "stop"}
            ],
        }
    )
    job = make_job({}, status={"phase": "Running"})
    plan = run(config, job, [make_pod(0, "Failed", exit_code=65, message=summary)])
    assert plan.status.phase == "Failed"
    assert [f.rule for f in plan.status.findings] == ["nan_loss"]
    assert plan.status.last_failure is not None
    assert plan.status.last_failure.message == "health rule nan_loss fired"


PEER_FALLOUT = json.dumps({"exitReason": "PeerFailure", "exitCode": 75, "message": "gloo: closed"})


def test_a_peers_victim_waits_for_the_culprit_then_blames_it(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}}, status={"phase": "Running"})
    victim = make_pod(0, "Failed", exit_code=75, message=PEER_FALLOUT)  # finished at T0 + 5 s
    # The culprit's kubelet has not reported yet: wait instead of blaming rank 0.
    waiting = run(config, job, [victim, make_pod(1, "Running")], seconds=10)
    assert waiting.status.phase == "Running"
    assert waiting.delete_pods == []
    assert waiting.requeue_after == 15
    # The culprit's permanent failure arrives: it is the one named, and the job fails.
    culprit = make_pod(1, "Failed", exit_code=1, finished_at="2026-01-01T12:00:06Z")
    failed = run(config, job, [victim, culprit], seconds=12)
    assert failed.status.phase == "Failed"
    assert failed.status.last_failure is not None
    assert failed.status.last_failure.pod == "digits-worker-1"
    assert failed.status.last_failure.exit_code == 1


def test_a_peers_victim_alone_restarts_after_the_grace(config: OperatorConfig) -> None:
    job = make_job({"parallelism": {"nodes": 2}}, status={"phase": "Running"})
    victim = make_pod(0, "Failed", exit_code=75, message=PEER_FALLOUT)
    plan = run(config, job, [victim, make_pod(1, "Running")], seconds=30)
    assert plan.status.phase == "Restarting"  # 75 is retryable; the peer vanished without trace
    assert plan.status.last_failure is not None
    assert plan.status.last_failure.pod == "digits-worker-0"


def test_cleanup_keeps_a_failed_pod_whose_phase_lags(config: OperatorConfig) -> None:
    """The container exited but the pod still says Running: it is finished, keep its logs."""
    job = make_job({"parallelism": {"nodes": 3}}, status={"phase": "Running"})
    pods = [make_pod(0, "Running", exit_code=1), make_pod(1), make_pod(2, "Failed", exit_code=1)]
    plan = run(config, job, pods)
    assert plan.status.phase == "Failed"
    assert plan.delete_pods == ["digits-worker-1"]

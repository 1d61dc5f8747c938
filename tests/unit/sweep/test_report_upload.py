"""When the operator uploads the sweep report (a pure decision), and what status and Events say
about the outcome; and the Gaussian-process sampler's message where PyTorch is missing."""

from __future__ import annotations

import datetime as dt
import importlib.util
from typing import Any

import pytest

from trainforge_operator.sweepdecision import REPORT_RETRY_SECONDS, SweepPlan, record_report
from trainforge_sweep import study

from .test_decision import T0, decide, finish, passes
from .test_engine import spec_of

ARTIFACTS = {"uri": "s3://bucket/artifacts/", "s3Endpoint": "http://minio:9000"}
URI = "s3://bucket/artifacts/ml/hp/report.html"


def template(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
        "hyperparameters": {"epochs": 3},
        "artifacts": ARTIFACTS,
    }
    base.update(changes)
    return base


def stored(plan: SweepPlan) -> dict[str, Any]:
    return plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")


def uploaded(plan: SweepPlan, at: float = 0, error: str | None = None) -> dict[str, Any]:
    """The status the controller writes after trying the plan's report upload."""
    record_report(plan, None, T0 + dt.timedelta(seconds=at), error)
    return stored(plan)


def two_trials(**changes: Any) -> list[dict[str, Any]]:
    trials, _ = passes(1, trialTemplate=template(), **changes)
    return trials


def test_no_report_before_a_trial_finished_or_without_artifacts() -> None:
    trials = two_trials()
    assert decide(trials, trialTemplate=template()).report is None
    done = [finish(t, 0.9, {}) for t in trials]
    assert decide(done, trialTemplate=template(artifacts={})).report is None


def test_a_new_best_asks_for_a_report_next_to_the_trials_artifacts() -> None:
    trials = two_trials()
    plan = decide([finish(trials[0], 0.9, {10: 0.8}), trials[1]], trialTemplate=template())
    request = plan.report
    assert request is not None
    assert (request.uri, request.endpoint) == (URI, "http://minio:9000")
    assert (request.finished_trials, request.best_trial, request.final) == (1, "hp-0", False)
    status = uploaded(plan)
    assert status["report"] == {
        "uri": URI,
        "finishedTrials": 1,
        "bestTrial": "hp-0",
        "final": False,
        "uploadTime": "2026-01-01T12:00:00Z",
        "lastAttemptTime": "2026-01-01T12:00:00Z",
    }
    assert ("ReportUploaded", "True") in {(c["type"], c["status"]) for c in status["conditions"]}
    assert [e.reason for e in plan.events][-1] == "ReportUploaded"
    # The same best trial: the uploaded report is current, nothing is rendered again.
    seen = [finish(trials[0], 0.9, {10: 0.8}), trials[1]]
    again = decide(seen + plan.create, status, at=5, trialTemplate=template())
    assert again.report is None


def test_the_end_of_the_sweep_asks_for_the_final_report_once() -> None:
    trials = two_trials(maxTrials=2)
    seen = [finish(t, 0.5 + i / 10, {}) for i, t in enumerate(trials)]
    done = decide(seen, maxTrials=2, trialTemplate=template())
    assert done.status.phase == "Completed"
    assert done.report is not None
    assert done.report.final
    assert done.report.finished_trials == 2
    status = uploaded(done)
    later = decide(seen, status, at=30, maxTrials=2, trialTemplate=template())
    assert later.report is None
    assert later.events == []


def test_a_failed_upload_is_a_condition_retried_after_a_minute_never_an_error() -> None:
    trials = two_trials(maxTrials=2)
    seen = [finish(t, 0.5 + i / 10, {}) for i, t in enumerate(trials)]
    done = decide(seen, maxTrials=2, trialTemplate=template())
    status = uploaded(done, error="PermissionError: Access Denied")
    failing = next(c for c in status["conditions"] if c["type"] == "ReportUploaded")
    assert (failing["status"], failing["reason"]) == ("False", "UploadFailed")
    assert "Access Denied" in failing["message"]
    assert "operator.storageCredentialsSecret" in failing["message"]
    assert [e.reason for e in done.events][-1] == "ReportUploadFailed"
    assert done.requeue_after == REPORT_RETRY_SECONDS
    assert status["report"]["uri"] == URI
    assert "uploadTime" not in status["report"]

    soon = decide(seen, status, at=10, maxTrials=2, trialTemplate=template())
    assert soon.report is None
    assert soon.requeue_after == pytest.approx(REPORT_RETRY_SECONDS - 10)

    retry = decide(seen, status, at=REPORT_RETRY_SECONDS + 1, maxTrials=2, trialTemplate=template())
    assert retry.report is not None
    record_report(retry, status, T0, "PermissionError: Access Denied")
    assert "ReportUploadFailed" not in [e.reason for e in retry.events]  # said once already

    fixed = decide(seen, status, at=REPORT_RETRY_SECONDS + 1, maxTrials=2, trialTemplate=template())
    healed = uploaded(fixed, at=REPORT_RETRY_SECONDS + 1)
    condition = next(c for c in healed["conditions"] if c["type"] == "ReportUploaded")
    assert condition["status"] == "True"
    assert healed["report"]["final"] is True


def test_gp_without_pytorch_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    spec = spec_of(algorithm={"type": "gp"})
    with pytest.raises(study.EngineError) as err:
        study.make_sampler(spec, 0)
    assert str(err.value) == study.GP_NEEDS_TORCH
    assert "use tpe" in str(err.value).lower()
    assert "--local" in str(err.value)
    plan = decide([], algorithm={"type": "gp"})
    assert plan.status.phase == "Failed"
    assert plan.status.message == study.GP_NEEDS_TORCH
    assert [e.reason for e in plan.events] == ["InvalidSpec"]

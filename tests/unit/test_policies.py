"""Failure classification, root cause and backoff."""

from __future__ import annotations

import json

import pytest

from trainforge_api.trainingjob import RunPolicy
from trainforge_operator.policies import backoff_seconds, classify, pod_failure, root_cause

from .conftest import make_pod


@pytest.mark.parametrize(
    ("code", "expected"),
    [(1, "permanent"), (64, "permanent"), (65, "permanent"), (75, "retryable"),
     (137, "retryable"), (143, "retryable")],
)  # fmt: skip
def test_default_exit_code_classes(code: int, expected: str) -> None:
    failure = pod_failure(make_pod(0, "Failed", exit_code=code))
    assert failure is not None
    assert classify(failure, RunPolicy()) == expected


def test_overrides_win_over_defaults() -> None:
    policy = RunPolicy(retryable_exit_codes=[1], permanent_exit_codes=[137])
    assert classify(pod_failure(make_pod(0, "Failed", exit_code=1)), policy) == "retryable"  # type: ignore[arg-type]
    assert classify(pod_failure(make_pod(0, "Failed", exit_code=137)), policy) == "permanent"  # type: ignore[arg-type]


def test_eviction_is_retryable_whatever_the_code() -> None:
    pod = make_pod(0, "Failed", exit_code=1, reason="Evicted", message="node low on memory")
    failure = pod_failure(pod)
    assert failure is not None
    assert failure.disrupted
    assert classify(failure, RunPolicy()) == "retryable"


def test_signal_is_derived_and_described() -> None:
    failure = pod_failure(make_pod(2, "Failed", exit_code=137))
    assert failure is not None
    assert failure.signal == 9
    assert (
        failure.describe()
        == "pod digits-worker-2 container worker was killed by signal 9 (exit code 137): Error"
    )


def test_running_pod_is_not_a_failure() -> None:
    assert pod_failure(make_pod(0, "Running")) is None
    assert pod_failure(make_pod(0, "Succeeded", exit_code=0)) is None


def test_root_cause_is_the_first_to_terminate() -> None:
    late = pod_failure(make_pod(0, "Failed", exit_code=143, finished_at="2026-01-01T12:00:09Z"))
    early = pod_failure(make_pod(1, "Failed", exit_code=1, finished_at="2026-01-01T12:00:03Z"))
    assert root_cause([late, early]).pod == "digits-worker-1"  # type: ignore[list-item]


def test_runtime_summary_message_is_shortened_to_reason_and_error() -> None:
    pod = make_pod(0, "Failed", exit_code=65, message='{"exitReason": "nan_loss at step 7"}')
    assert pod_failure(pod).message == "nan_loss at step 7"  # type: ignore[union-attr]
    summary = {"exitReason": "UserError", "exitCode": 1, "metrics": {"loss": 2.3},
               "message": "ValueError: batch_size 3 is not divisible by world 2"}  # fmt: skip
    pod = make_pod(0, "Failed", exit_code=1, message=json.dumps(summary))
    assert pod_failure(pod).message == (  # type: ignore[union-attr]
        "UserError: ValueError: batch_size 3 is not divisible by world 2"
    )


def test_backoff_doubles_and_caps() -> None:
    policy = RunPolicy(restart_backoff_seconds=10, max_restart_backoff_seconds=35)
    assert [backoff_seconds(n, policy) for n in range(4)] == [10, 20, 35, 35]


PEER_FALLOUT = json.dumps({"exitReason": "PeerFailure", "exitCode": 75, "message": "gloo: closed"})


def test_root_cause_looks_past_ranks_that_only_lost_their_peer() -> None:
    victim = pod_failure(
        make_pod(
            0, "Failed", exit_code=75, finished_at="2026-01-01T12:00:03Z", message=PEER_FALLOUT
        )
    )
    culprit = pod_failure(make_pod(1, "Failed", exit_code=137, finished_at="2026-01-01T12:00:04Z"))
    assert victim is not None
    assert victim.peer_fallout
    assert culprit is not None
    assert root_cause([victim, culprit]).pod == "digits-worker-1"
    assert root_cause([victim]).pod == "digits-worker-0"  # nothing better: the victim it is

"""The end-of-run check's judgement, on plain data: a job still mid-run is reported apart from a
job that ended wrong, and both fail; the wait ends when every job has ended or nothing moves."""

from __future__ import annotations

from typing import Any

import pytest
from chaos_lib import Plan, Verdict, judge_jobs, wait_terminal


def job(phase: str | None, restarts: int = 0, exit_code: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "restarts": restarts, "attempt": restarts}
    if exit_code is not None:
        status["lastFailure"] = {"exitCode": exit_code}
    return {"metadata": {"name": "x", "uid": "u"}, "status": status}


PLANS = {
    "ok": Plan(1, permanent=False),
    "perm": Plan(0, permanent=True),
    "slow": Plan(2, permanent=False),
    "wrong": Plan(0, permanent=False),
    "miscounted": Plan(1, permanent=False),
    "bad-exit": Plan(0, permanent=True),
}


def test_still_running_is_reported_apart_from_wrong_states() -> None:
    jobs = {
        "ok": job("Succeeded", 1),
        "perm": job("Failed", 0, exit_code=1),
        "slow": job("Restarting", 1),
        "wrong": job("Failed", 0, exit_code=1),
        "miscounted": job("Succeeded", 2),
        "bad-exit": job("Failed", 0, exit_code=137),
    }
    verdict = Verdict("t", jobs_checked=len(PLANS))
    judge_jobs(verdict, jobs, PLANS)
    assert [w.split(":")[0] for w in verdict.still_running] == ["slow"]
    assert sorted(w.split(":")[0] for w in verdict.wrong_states) == [
        "bad-exit",
        "miscounted",
        "wrong",
    ]
    assert "still running at the deadline 1" in verdict.line()
    assert "wrong states 3" in verdict.line()
    assert "still running at the deadline: slow" in verdict.problems()


def test_a_job_never_seen_is_still_running_and_fails() -> None:
    verdict = Verdict("t")
    judge_jobs(verdict, {}, {"missing": Plan(0, permanent=False)})
    assert verdict.still_running
    assert not verdict.wrong_states
    assert verdict.problems()


def test_all_as_planned_is_clean() -> None:
    verdict = Verdict("t")
    judge_jobs(verdict, {"ok": job("Succeeded", 1)}, {"ok": Plan(1, permanent=False)})
    assert not verdict.problems()


class Jobs:
    """A CustomObjectsApi stand-in that serves a scripted sequence of job lists."""

    def __init__(self, *reads: dict[str, dict[str, Any]]) -> None:
        self.reads, self.calls = list(reads), 0

    def list_namespaced_custom_object(self, *_: Any) -> dict[str, Any]:
        self.calls += 1
        jobs = self.reads[min(self.calls, len(self.reads)) - 1]
        return {"items": [{**j, "metadata": {"name": n, "uid": n}} for n, j in jobs.items()]}


@pytest.mark.timeout(30)
def test_the_wait_ends_when_every_job_has_ended() -> None:
    api = Jobs({"a": job("Running")}, {"a": job("Succeeded")})
    jobs = wait_terminal(api, "ns", {"a"}, timeout=20)  # type: ignore[arg-type]
    assert jobs["a"]["status"]["phase"] == "Succeeded"
    assert api.calls == 2


@pytest.mark.timeout(30)
def test_the_wait_gives_up_when_nothing_moves() -> None:
    api = Jobs({"a": job("Running")})
    jobs = wait_terminal(api, "ns", {"a"}, timeout=20, stall=2.5)  # type: ignore[arg-type]
    assert jobs["a"]["status"]["phase"] == "Running"
    assert api.calls <= 5  # stopped by the stall (about 3 reads), long before the 20 s timeout

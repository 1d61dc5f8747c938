"""kube.JobWatch: what a list and watch events of TrainingJobs turn into, and which loops
handlers.job_event wakes for them (the job's, its sweep's, its schedule's)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from trainforge_operator.handlers import job_event
from trainforge_operator.kube import JobWatch
from trainforge_operator.rest import Rest


def job(name: str, version: str = "1", **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ml", "resourceVersion": version, "labels": labels}
    return {"metadata": meta, "spec": {}}


def listing(items: list[Any]) -> bytes:
    return json.dumps({"metadata": {"resourceVersion": "9"}, "items": items}).encode()


class Api(Rest):
    """Answers a LIST of the namespace's TrainingJobs with `items`."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
        assert (method, path) == ("GET", "/apis/trainforge.io/v1alpha1/namespaces/ml/trainingjobs")
        assert kwargs["query"]["labelSelector"] is None  # every job: not only our own
        return listing(self.items)


def relist(w: JobWatch) -> str:
    """One list of the namespace, as the watch's task makes it."""
    return asyncio.run(w._relist("ml"))


def watch(items: list[Any]) -> tuple[JobWatch, list[tuple[str | None, str]], Api]:
    seen: list[tuple[str | None, str]] = []
    api = Api(items)
    w = JobWatch(api, ["ml"], lambda kind, body: seen.append((kind, body["metadata"]["name"])))
    return w, seen, api


def test_a_list_sends_every_job_as_kopf_did_and_a_vanished_job_as_deleted() -> None:
    w, seen, api = watch([job("a"), job("b", owner="s")])
    assert relist(w) == "9"
    assert sorted(seen) == [(None, "a"), (None, "b")]
    seen.clear()
    api.items = [job("a", "2")]  # b was deleted while the watch was cut
    relist(w)
    assert seen == [("DELETED", "b"), (None, "a")]


def test_watch_events_pass_through_and_a_deleted_job_is_forgotten() -> None:
    w, seen, _ = watch([])
    relist(w)
    w._apply("ADDED", job("a"))
    w._apply("MODIFIED", job("a", "2"))
    w._apply("DELETED", job("a", "3"))
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    seen.clear()
    relist(w)  # nothing listed, nothing known: no second DELETED
    assert seen == []


class Loops:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def notify(self, *args: Any) -> None:
        self.calls.append(("notify", *args))

    def forget(self, *args: Any) -> None:
        self.calls.append(("forget", *args))


def test_job_event_wakes_the_job_with_its_body_and_its_sweep_and_schedule() -> None:
    controller, sweeps, schedules = Loops(), Loops(), Loops()
    body = job("t1", "5", **{"trainforge.io/sweep-name": "s", "trainforge.io/schedule": "nightly"})
    job_event(controller, sweeps, schedules, "MODIFIED", body)  # type: ignore[arg-type]
    assert controller.calls == [("notify", "ml", "t1", "5", body)]
    assert sweeps.calls == [("notify", "ml", "s")]
    assert schedules.calls == [("notify", "ml", "nightly")]
    job_event(controller, sweeps, schedules, "DELETED", body)  # type: ignore[arg-type]
    assert controller.calls[-1] == ("forget", "ml", "t1")
    assert sweeps.calls[-1] == ("notify", "ml", "s")
    assert schedules.calls[-1] == ("notify", "ml", "nightly")


def test_job_event_of_a_plain_job_wakes_only_its_loop() -> None:
    controller, sweeps, schedules = Loops(), Loops(), Loops()
    job_event(controller, sweeps, schedules, None, job("plain"))  # type: ignore[arg-type]
    assert [c[0] for c in controller.calls] == ["notify"]
    assert sweeps.calls == schedules.calls == []

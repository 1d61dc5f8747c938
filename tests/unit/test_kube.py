"""The API adapter's one error rule: an expected status is an answer, anything else is counted,
logged and raised (400/422 on a create as ChildRejectedError, any other refused create as
ChildCreateError); only errors of the moment are transient."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
import pytest
from prometheus_client import REGISTRY

from trainforge_operator.kube import ChildCreateError, ChildRejectedError, KubeApi, transient
from trainforge_operator.plan import Event
from trainforge_operator.rest import ApiException, Rest

T = TypeVar("T")

POD = {"kind": "Pod", "metadata": {"name": "digits-worker-0", "namespace": "ml"}}
JOB = {
    "apiVersion": "trainforge.io/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "digits", "namespace": "ml", "resourceVersion": "3", "uid": "u"},
}


class Fake(Rest):
    """Every request answers with `outcome`: an ApiException status, or a JSON body."""

    def __init__(self, outcome: int | object) -> None:
        self.outcome = outcome

    async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
        assert path.startswith(("/api/v1/namespaces/ml/", "/apis/trainforge.io/v1alpha1/")), path
        if isinstance(self.outcome, int):
            body = json.dumps({"message": "spec.volumes[2].name: Duplicate value"})
            raise ApiException(self.outcome, "Because", body)
        return json.dumps(self.outcome).encode()


def api(outcome: int | object) -> KubeApi:
    return KubeApi(Fake(outcome))


def run(call: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(call)


def errors(verb: str | None = None, resource: str | None = None) -> float:
    """trainforge_api_errors_total for this verb and resource (None: any)."""
    return sum(
        s.value
        for m in REGISTRY.collect()
        for s in m.samples
        if s.name == "trainforge_api_errors_total"
        and verb in (None, s.labels["verb"])
        and resource in (None, s.labels["resource"])
    )


@pytest.mark.parametrize(
    ("call", "status", "answer"),
    [
        pytest.param(lambda k: k.get_job("ml", "digits"), 404, None, id="get a missing job"),
        pytest.param(lambda k: k.exists("Service", "ml", "digits"), 404, False, id="no Service"),
        pytest.param(lambda k: k.read_configmap_data("ml", "x"), 404, None, id="no ConfigMap"),
        pytest.param(lambda k: k.create(POD), 409, False, id="create: already exists"),
        pytest.param(lambda k: k.delete_pod("ml", "x"), 404, None, id="delete: already gone"),
        pytest.param(
            lambda k: k.delete_pod("ml", "x", "uid-1"), 409, None, id="delete: another pod now"
        ),
        pytest.param(lambda k: k.delete_job("ml", "x"), 404, None, id="delete job: gone"),
        pytest.param(lambda k: k.replace_status(JOB, {}), 409, None, id="status: conflict"),
        pytest.param(lambda k: k.replace_status(JOB, {}), 404, None, id="status: job gone"),
    ],
)
def test_expected_statuses_are_answers(call: Any, status: int, answer: object) -> None:
    before = errors()
    assert run(call(api(status))) == answer
    assert errors() == before


def test_other_failures_are_counted_and_raised() -> None:
    before = errors("list", "pods")
    with pytest.raises(ApiException):
        run(api(500).list_pods("ml", "digits", "u"))
    assert errors("list", "pods") == before + 1


@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_child_is_a_rejected_spec(status: int) -> None:
    with pytest.raises(ChildRejectedError, match=r"^Pod digits-worker-0: spec\.volumes.*Duplicate"):
        run(api(status).create(POD))


@pytest.mark.parametrize("status", [403, 404, 429, 500, 503])
def test_another_refused_create_quotes_the_server(status: int) -> None:
    with pytest.raises(ChildCreateError) as refused:
        run(api(status).create(POD))
    assert str(refused.value) == (
        f"Pod digits-worker-0: spec.volumes[2].name: Duplicate value (HTTP {status})"
    )
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("err", "retry"),
    [
        (ApiException(409), True),
        (ApiException(429), True),
        (ApiException(408), True),
        (ApiException(500), True),
        (ApiException(503), True),
        (ApiException(0), True),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientPayloadError("cut mid-answer"), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (ApiException(400), False),
        (ApiException(403), False),
        (ApiException(404), False),
        (ApiException(422), False),
        (KeyError("name"), False),
    ],
)
def test_only_errors_of_the_moment_are_transient(err: BaseException, retry: bool) -> None:
    assert transient(err) is retry


def test_a_pod_is_deleted_by_the_uid_it_was_decided_on() -> None:
    sent: dict[str, Any] = {}

    class Recording(Fake):
        async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
            sent.update(kwargs, method=method, path=path)
            return b"{}"

    run(KubeApi(Recording({})).delete_pod("ml", "digits-worker-0", "uid-1"))
    assert sent == {
        "method": "DELETE",
        "path": "/api/v1/namespaces/ml/pods/digits-worker-0",
        "body": {"preconditions": {"uid": "uid-1"}},
        "query": None,
        "content_type": "application/json",
        "slotted": True,
    }


def test_events_are_posted_beside_the_request_slots_not_in_them() -> None:
    """The EventPoster caps Events itself; in the slots they took up to a quarter of those a
    burst of new jobs needed for their pods."""
    sent: list[tuple[str, bool]] = []

    class Recording(Fake):
        async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
            sent.append((path.rsplit("/", 1)[-1], kwargs["slotted"]))
            return b"{}"

    kube = KubeApi(Recording({}))
    run(kube.post_event(JOB, Event("Normal", "Created", "hi"), dt.datetime.now(dt.UTC)))
    run(kube.create(POD))
    assert sent == [("events", False), ("pods", True)]


def test_a_failed_event_post_is_never_fatal() -> None:
    before = errors("create", "events")
    run(api(403).post_event(JOB, Event("Normal", "Created", "hi"), dt.datetime.now(dt.UTC)))
    assert errors("create", "events") == before + 1


def test_bodies_are_parsed_or_handed_back() -> None:
    listing = {"items": [POD, "junk"]}
    assert run(api(listing).list_pods("ml", "digits", "u")) == [POD]
    assert run(api({"data": {"a": 1}}).read_configmap_data("ml", "x")) == {"a": "1"}
    assert run(api({}).create(POD)) is True
    assert run(api({}).exists("ConfigMap", "ml", "x")) is True

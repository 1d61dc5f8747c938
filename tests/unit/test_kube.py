"""The API adapter's one error rule: an expected status is an answer, anything else is counted,
logged and raised (400/422 on a create as ChildRejectedError, any other refused create as
ChildCreateError); only errors of the moment are transient."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY

from trainforge_operator.kube import ChildCreateError, ChildRejectedError, KubeApi, transient
from trainforge_operator.plan import Event

POD = {"kind": "Pod", "metadata": {"name": "digits-worker-0", "namespace": "ml"}}
JOB = {
    "apiVersion": "trainforge.io/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "digits", "namespace": "ml", "resourceVersion": "3", "uid": "u"},
}


class Response:
    def __init__(self, obj: object) -> None:
        self.data = json.dumps(obj).encode()
        self.released = False

    def drain_conn(self) -> None: ...

    def release_conn(self) -> None:
        self.released = True


class Fake:
    """Every client method answers with `outcome`: an ApiException status, or a JSON body."""

    def __init__(self, outcome: int | object) -> None:
        self.outcome = outcome

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Response:
            assert kwargs.get("_preload_content") is False
            if isinstance(self.outcome, int):
                err = ApiException(status=self.outcome, reason="Because")
                err.body = json.dumps({"message": "spec.volumes[2].name: Duplicate value"})
                raise err
            return Response(self.outcome)

        return call


def api(outcome: int | object) -> KubeApi:
    kube = KubeApi(api_client=object())
    kube.core = kube.custom = Fake(outcome)  # type: ignore[assignment]
    return kube


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
    assert call(api(status)) == answer
    assert errors() == before


def test_other_failures_are_counted_and_raised() -> None:
    before = errors("list", "pods")
    with pytest.raises(ApiException):
        api(500).list_pods("ml", "digits", "u")
    assert errors("list", "pods") == before + 1


@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_child_is_a_rejected_spec(status: int) -> None:
    with pytest.raises(ChildRejectedError, match=r"^Pod digits-worker-0: spec\.volumes.*Duplicate"):
        api(status).create(POD)


@pytest.mark.parametrize("status", [403, 404, 429, 500, 503])
def test_another_refused_create_quotes_the_server(status: int) -> None:
    with pytest.raises(ChildCreateError) as refused:
        api(status).create(POD)
    assert str(refused.value) == (
        f"Pod digits-worker-0: spec.volumes[2].name: Duplicate value (HTTP {status})"
    )
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("err", "retry"),
    [
        (ApiException(status=409), True),
        (ApiException(status=429), True),
        (ApiException(status=408), True),
        (ApiException(status=500), True),
        (ApiException(status=503), True),
        (ApiException(status=0), True),
        (urllib3.exceptions.ProtocolError("cut"), True),
        (ConnectionRefusedError(), True),
        (ApiException(status=400), False),
        (ApiException(status=403), False),
        (ApiException(status=404), False),
        (ApiException(status=422), False),
        (KeyError("name"), False),
    ],
)
def test_only_errors_of_the_moment_are_transient(err: BaseException, retry: bool) -> None:
    assert transient(err) is retry


def test_a_pod_is_deleted_by_the_uid_it_was_decided_on() -> None:
    sent: dict[str, Any] = {}

    class Recording:
        def delete_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> Response:
            sent.update(kwargs, name=name, namespace=namespace)
            return Response({})

    kube = KubeApi(api_client=object())
    kube.core = Recording()  # type: ignore[assignment]
    kube.delete_pod("ml", "digits-worker-0", "uid-1")
    assert sent["body"] == {"preconditions": {"uid": "uid-1"}}
    assert (sent["name"], sent["namespace"]) == ("digits-worker-0", "ml")


def test_a_failed_event_post_is_never_fatal() -> None:
    before = errors("create", "events")
    api(403).post_event(JOB, Event("Normal", "Created", "hi"), dt.datetime.now(dt.UTC))
    assert errors("create", "events") == before + 1


def test_bodies_are_parsed_or_handed_back() -> None:
    listing = {"items": [POD, "junk"]}
    assert api(listing).list_pods("ml", "digits", "u") == [POD]
    assert api({"data": {"a": 1}}).read_configmap_data("ml", "x") == {"a": "1"}
    assert api({}).create(POD) is True
    assert api({}).exists("ConfigMap", "ml", "x") is True

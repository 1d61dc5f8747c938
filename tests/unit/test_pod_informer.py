"""The pod informer's bookkeeping (kube.PodInformer): what a list and watch events leave in
memory, which jobs they wake, and that a pass falls back to a LIST until the first list is in."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from trainforge_operator.handlers import WORKER_POD_SELECTOR
from trainforge_operator.kube import KubeApi, PodInformer
from trainforge_operator.rest import Rest


def pod(name: str, job: str, uid: str = "u1", ns: str = "ml", phase: str = "Pending") -> Any:
    labels = {"trainforge.io/job-name": job, "trainforge.io/job-uid": uid}
    meta = {"name": name, "namespace": ns, "labels": labels, "managedFields": [{"big": 1}]}
    spec = {"nodeName": "gpu-3", "containers": [{"name": "worker", "env": [{"name": "X"}]}]}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def listing(items: list[Any]) -> bytes:
    return json.dumps({"metadata": {"resourceVersion": "7"}, "items": items}).encode()


class Core(Rest):
    """Answers a LIST of a namespace's pods with `items`, recording the selector asked for."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.selectors: list[str] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
        assert (method, path) == ("GET", "/api/v1/namespaces/ml/pods"), (method, path)
        self.selectors.append(kwargs["query"]["labelSelector"])
        return listing([p for p in self.items if p["metadata"]["namespace"] == "ml"])


class Refuse(Rest):
    """Any request fails loudly."""

    def __init__(self) -> None: ...

    async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
        raise AssertionError(f"unexpected {method} {path}")


def relist(inf: PodInformer | Any, namespace: str = "ml") -> str:
    """One list of the namespace, as the informer's task makes it."""
    return asyncio.run(inf._relist(namespace))  # type: ignore[no-any-return]


def informer(items: list[Any]) -> tuple[PodInformer, list[tuple[str, str]], Core]:
    woken: list[tuple[str, str]] = []
    core = Core(items)
    inf = PodInformer(core, ["ml"], WORKER_POD_SELECTOR, lambda ns, job: woken.append((ns, job)))
    return inf, woken, core


def names(pods: list[Any] | None) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods or [])


def test_nothing_is_answered_before_the_first_list() -> None:
    inf, _, _ = informer([pod("a-worker-0", "a")])
    assert inf.pods("ml", "a", "u1") is None


def test_the_list_asks_the_apiserver_for_worker_pods_only_and_wakes_their_jobs() -> None:
    inf, woken, core = informer([pod("a-worker-0", "a"), pod("b-worker-0", "b")])
    assert relist(inf) == "7"
    assert core.selectors == [WORKER_POD_SELECTOR]
    assert sorted(woken) == [("ml", "a"), ("ml", "b")]
    found = inf.pods("ml", "a", "u1")
    assert names(found) == ["a-worker-0"]
    assert found is not None
    assert "managedFields" not in found[0]["metadata"]
    assert found[0]["spec"] == {"nodeName": "gpu-3"}  # what pods.py reads; containers dropped
    assert found[0]["status"] == {"phase": "Pending"}


def test_a_deleted_namesakes_pods_are_not_this_jobs() -> None:
    inf, _, _ = informer([pod("a-worker-0", "a", uid="old")])
    relist(inf)
    assert inf.pods("ml", "a", "u1") == []


def test_watch_events_update_memory_and_wake_the_job() -> None:
    inf, woken, _ = informer([])
    relist(inf)
    inf._apply("ADDED", pod("a-worker-0", "a"))
    inf._apply("MODIFIED", pod("a-worker-0", "a", phase="Running"))
    found = inf.pods("ml", "a", "u1")
    assert found is not None
    assert [p["status"]["phase"] for p in found] == ["Running"]
    inf._apply("DELETED", pod("a-worker-0", "a"))
    assert inf.pods("ml", "a", "u1") == []
    assert woken == [("ml", "a")] * 3


def test_a_relist_drops_pods_deleted_while_the_watch_was_cut() -> None:
    inf, woken, core = informer([pod("a-worker-0", "a")])
    relist(inf)
    core.items = []
    woken.clear()
    relist(inf)
    assert inf.pods("ml", "a", "u1") == []
    assert woken == [("ml", "a")]


def test_list_pods_reads_memory_once_listed() -> None:
    inf, _, _ = informer([pod("a-worker-0", "a")])
    kube = KubeApi(Refuse())  # a LIST would fail loudly
    kube.pod_informer = inf
    relist(inf)
    assert names(asyncio.run(kube.list_pods("ml", "a", "u1"))) == ["a-worker-0"]
    inf.stop()
    assert inf.pods("ml", "a", "u1") is None


def test_a_deleted_pod_is_remembered_as_last_seen_until_a_namesake_appears() -> None:
    """Why a worker vanished: the pod GC marks a lost node's pods, then deletes them."""
    inf, _, _ = informer([])
    relist(inf)
    marked = pod("a-worker-0", "a", phase="Failed")
    marked["status"]["conditions"] = [
        {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC"}
    ]
    inf._apply("ADDED", pod("a-worker-0", "a"))
    assert inf.departed("ml", "a", "u1") == []
    inf._apply("DELETED", marked)
    gone = inf.departed("ml", "a", "u1")
    assert [p["status"]["conditions"][0]["reason"] for p in gone] == ["DeletionByPodGC"]
    assert inf.departed("ml", "a", "other-uid") == []
    inf._apply("ADDED", pod("a-worker-0", "a"))  # the next attempt's pod of that name
    assert inf.departed("ml", "a", "u1") == []
    inf._apply("DELETED", marked)
    inf.forget("ml", "a")
    assert inf.departed("ml", "a", "u1") == []

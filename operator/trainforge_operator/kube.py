"""Thin Kubernetes API access for the reconciler: a small asyncio REST client (`rest.py`).

Why not kopf: kopf watches and dispatches but is not a general API client; it can patch only the
object being handled. The reconciler needs to list, create and delete children, replace the status
with optimistic concurrency (resourceVersion, 409 on conflict) and post Events after the write.
Why not the official `kubernetes` client: it validates every call with pydantic and costs ~28 MB
at import (see `rest.py`). Every call is a coroutine on the operator's event loop, at most
`apiConcurrency` in flight. Every object is a plain camelCase dict, exactly what the pure
builders and `decide()` use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import aiohttp
import orjson

from trainforge_api.base import GROUP, VERSION
from trainforge_api.trainingjob import PLURAL
from trainforge_operator import kueue, metrics
from trainforge_operator.names import LABEL_JOB, LABEL_UID, MANAGED_BY, job_pods_selector
from trainforge_operator.plan import Event
from trainforge_operator.rest import PATCH, ApiException, ListWatch, Rest, core_path, custom_path

Obj = dict[str, Any]
log = logging.getLogger(__name__)
COMPONENT = MANAGED_BY  # the source of the operator's Events
# Statuses that answer a request rather than fail it.
ABSENT = (404,)  # a read or delete of something that is not there
EXISTS = (409,)  # a create of a deterministic name that a previous pass already created
STALE = (404, 409)  # a status write at a resourceVersion that is no longer current
REJECTED = (400, 422)  # the API server refused an object built from the spec
# Failures of the moment, not of the request: a timeout, a conflict, throttling, the API server
# (or what stands in front of it) failing. Any other status is an answer that a retry repeats.
RETRYABLE = (408, 409, 429)


def read_json(data: bytes) -> Obj:
    """Parse a response body (a JSON object; {} for anything else)."""
    parsed = orjson.loads(data or b"{}")
    return parsed if isinstance(parsed, dict) else {}


def transient(err: BaseException) -> bool:
    """An error of the moment (retry it): the network (a timeout included), or an API answer in
    `RETRYABLE` or 5xx.

    Anything else a pass raises, a 403 or a 404 included, was not foreseen and would fail the
    same way again; the controller marks the job Failed with it after a few tries instead of
    retrying it silently for ever."""
    if isinstance(err, ApiException):
        return retryable_status(err.status)
    return isinstance(err, aiohttp.ClientError | OSError)


def retryable_status(status: int | None) -> bool:
    """No answer (0), or an answer that may differ when asked again."""
    return not status or status in RETRYABLE or status >= 500


class ChildRejectedError(Exception):
    """The API server refused a child built from the spec (400/422): the spec must change."""


class ChildCreateError(Exception):
    """The API server refused to create a child for a reason outside the object itself: 403
    (a ServiceAccount or PriorityClass that does not exist, a quota, an admission policy), or
    it failed (429, 5xx). The job says so while the operator retries, and fails past a limit."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def _server_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except (TypeError, ValueError):
        return str(err.reason)


class KubeApi:
    """The handful of API calls the reconciler makes; expected 404/409 are answers, not errors."""

    def __init__(self, rest: Rest | None = None, pool_size: int = 16) -> None:
        # At most pool_size requests in flight; credentials as kopf's own login finds them.
        self.rest = rest or Rest(pool_size=pool_size)
        self.pod_informer: PodInformer | None = None  # set at the operator's startup (handlers.py)

    async def _send(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        expected: Collection[int] = (),
        read: bool = True,
        slotted: bool = True,
    ) -> Obj | None:
        """Send one request: the parsed body when `read`, else {} (the body is not parsed). A
        status in `expected` is an answer: None. Any other failure is counted
        (trainforge_api_errors_total), logged and raised. `slotted`: see `Rest.request`."""
        try:
            data = await self.rest.request(
                method, path, body=body, query=query, content_type=content_type, slotted=slotted
            )
        except ApiException as err:
            if err.status in expected:
                return None
            metrics.API_ERRORS.labels(verb=verb, resource=resource).inc()
            log.warning("%s %s failed: %s %s", verb, resource, err.status, err.reason)
            raise
        return read_json(data) if read else {}

    async def close(self) -> None:
        """End the HTTP session (the operator's cleanup)."""
        await self.rest.close()

    async def get_job(self, namespace: str, name: str) -> Obj | None:
        """The TrainingJob, or None when it does not exist."""
        path = custom_path(GROUP, VERSION, PLURAL, namespace, name)
        return await self._send("get", PLURAL, "GET", path, expected=ABSENT)

    def departed_pods(self, namespace: str, job: str, uid: str) -> list[Obj]:
        """Pods of this job object the pod informer saw deleted (empty without an informer)."""
        informer = self.pod_informer
        return informer.departed(namespace, job, uid) if informer is not None else []

    def cached_pods(self, namespace: str, job: str, uid: str) -> list[Obj] | None:
        """This job object's pods from the pod informer's memory; None until it has listed the
        namespace (or without an informer)."""
        informer = self.pod_informer
        return informer.pods(namespace, job, uid) if informer is not None else None

    async def list_pods(self, namespace: str, job: str, uid: str) -> list[Obj]:
        """Pods of this job object (the uid label excludes a deleted namesake's pods): from the
        pod informer once it has listed the namespace, else from the API server."""
        cached = self.cached_pods(namespace, job, uid)
        if cached is not None:
            return cached
        query = {"labelSelector": job_pods_selector(job, uid)}
        path = core_path("pods", namespace)
        listing = await self._send("list", "pods", "GET", path, query=query)
        items = (listing or {}).get("items") or []
        return [p for p in items if isinstance(p, dict)]

    async def exists(self, kind: str, namespace: str, name: str) -> bool:
        resource = {"Service": "services", "ConfigMap": "configmaps"}[kind]
        path = core_path(resource, namespace, name)
        found = await self._send("get", resource, "GET", path, expected=ABSENT, read=False)
        return found is not None

    async def read_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's data, or None when it does not exist."""
        path = core_path("configmaps", namespace, name)
        cm = await self._send("get", "configmaps", "GET", path, expected=ABSENT)
        if cm is None:
            return None
        return {str(k): str(v) for k, v in (cm.get("data") or {}).items()}

    async def update_configmap(self, obj: Obj) -> None:
        """Replace the data of an existing ConfigMap we own."""
        meta = obj["metadata"]
        path = core_path("configmaps", meta["namespace"], meta["name"])
        body = {"data": obj["data"]}
        await self._send(
            "patch", "configmaps", "PATCH", path, body=body, content_type=PATCH, read=False
        )

    async def create(self, obj: Obj) -> bool:
        """Create a child; an AlreadyExists (409) is success (False): names are deterministic."""
        kind = obj["kind"]
        namespace = obj["metadata"]["namespace"]
        resource = {"Pod": "pods", "Service": "services", "ConfigMap": "configmaps"}.get(kind)
        if resource is None:
            raise ValueError(f"the operator does not create {kind} objects")
        path = core_path(resource, namespace)
        try:
            created = await self._send(
                "create", resource, "POST", path, body=obj, expected=EXISTS, read=False
            )
        except ApiException as err:
            message = f"{kind} {obj['metadata']['name']}: {_server_message(err)}"
            if err.status in REJECTED:
                raise ChildRejectedError(message) from err
            raise ChildCreateError(f"{message} (HTTP {err.status})", err.status) from err
        return created is not None

    async def delete_pod(self, namespace: str, name: str, uid: str = "") -> None:
        """Delete the pod `name`, and only the object with `uid` when one is given.

        Worker names are the same in every attempt, so a delete decided on an older view (an
        informer that lags, a request still in flight from a killed operator) could otherwise
        remove the next attempt's pod of that name. With the UID precondition the API server
        answers 409 instead, which means the pod meant is already gone."""
        path = core_path("pods", namespace, name)
        body: Obj | None = {"preconditions": {"uid": uid}} if uid else None
        expected = STALE if uid else ABSENT
        await self._send("delete", "pods", "DELETE", path, body=body, expected=expected, read=False)

    async def replace_status(self, body: Obj, status: Obj) -> Obj | None:
        """PUT the TrainingJob's status at the observed resourceVersion: the stored object,
        None on 404/409."""
        return await self.replace_custom_status(PLURAL, body, status)

    async def replace_custom_status(self, plural: str, body: Obj, status: Obj) -> Obj | None:
        """PUT the status of a `plural` object at the observed resourceVersion: the stored
        object, None on 404/409 (gone, or changed since it was read)."""
        meta = body["metadata"]
        obj = {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": body.get("spec", {}),
            "status": status,
        }
        path = custom_path(GROUP, VERSION, plural, meta["namespace"], meta["name"]) + "/status"
        return await self._send("update", plural + "/status", "PUT", path, body=obj, expected=STALE)

    # --- Kueue (kueue.py): the job's Workload and what its admission names -----------------------

    async def get_kueue(self, plural: str, name: str, namespace: str | None = None) -> Obj | None:
        """A Kueue object (v1beta2): namespaced when `namespace` is given, else cluster-scoped;
        None when it does not exist."""
        path = custom_path(kueue.GROUP, kueue.VERSION, plural, namespace or "", name)
        return await self._send("get", plural, "GET", path, expected=ABSENT)

    async def create_workload(self, obj: Obj) -> bool:
        """Create the job's Workload; AlreadyExists is success (False): the name is fixed."""
        meta = obj["metadata"]
        path = custom_path(kueue.GROUP, kueue.VERSION, kueue.WORKLOADS, meta["namespace"])
        try:
            created = await self._send(
                "create", kueue.WORKLOADS, "POST", path, body=obj, expected=EXISTS, read=False
            )
        except ApiException as err:
            if err.status in REJECTED:
                raise ChildRejectedError(
                    f"Workload {meta['name']}: {_server_message(err)}"
                ) from err
            raise
        return created is not None

    async def replace_workload_status(self, workload: Obj) -> Obj | None:
        """PUT a Workload's status at its observed resourceVersion: the stored object, None
        when it changed since (Kueue wrote it meanwhile) or is gone."""
        meta = workload["metadata"]
        path = (
            custom_path(
                kueue.GROUP, kueue.VERSION, kueue.WORKLOADS, meta["namespace"], meta["name"]
            )
            + "/status"
        )
        resource = kueue.WORKLOADS + "/status"
        return await self._send("update", resource, "PUT", path, body=workload, expected=STALE)

    async def delete_job(self, namespace: str, name: str) -> None:
        path = custom_path(GROUP, VERSION, PLURAL, namespace, name)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        await self._send("delete", PLURAL, "DELETE", path, body=body, expected=ABSENT, read=False)

    async def post_event(self, body: Obj, event: Event, now: dt.datetime) -> None:
        """A core/v1 Event on the TrainingJob; failures are counted and logged, never fatal.
        Outside the request slots: the EventPoster caps Events itself (events.py)."""
        meta = body["metadata"]
        stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": COMPONENT},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        path = core_path("events", meta["namespace"])
        with contextlib.suppress(ApiException):
            await self._send("create", "events", "POST", path, body=ev, read=False, slotted=False)


class PodInformer(ListWatch):
    """The operator's worker pods, kept current by one list+watch per namespace (an informer).

    A pass used to LIST its job's pods from the API server (about 1.5 uncached LISTs per job in
    a burst) and every pod event went through kopf's per-event machinery only to wake the job.
    Here one task per namespace lists the worker pods once, then follows their watch (raw JSON
    lines, kept slim: see `_slim`) and calls `on_change(namespace, job)` for every event, on
    the event loop. `pods()` answers from memory once the first list of that namespace is in;
    until then (or after `stop()`) it returns None and the caller lists. Like any informer it
    can lag the API server by a watch event; passes are level-triggered, so the event that ends
    the lag wakes the job again. A relist after a cut or a 410 replaces the namespace's pods and
    wakes every job whose pods it saw change.
    """

    def __init__(
        self,
        rest: Rest,
        namespaces: Collection[str],
        selector: str,
        on_change: Callable[[str, str], None],
        watch_seconds: int = 300,
    ) -> None:
        super().__init__(rest, _pods_path, namespaces, selector, watch_seconds)
        self.on_change = on_change
        self._pods: dict[tuple[str, str], dict[str, Obj]] = {}
        # The last state of each pod the watch saw deleted, until a namesake appears: why a
        # worker vanished (the pod GC marks a lost node's pods DisruptionTarget, then deletes).
        self._departed: dict[tuple[str, str], dict[str, Obj]] = {}
        self._synced: set[str] = set()

    def stop(self) -> None:
        self._synced.clear()
        super().stop()

    def pods(self, namespace: str, job: str, uid: str) -> list[Obj] | None:
        """This job object's pods from memory; None while the namespace is not listed yet."""
        if namespace not in self._synced and "" not in self._synced:
            return None
        found = self._pods.get((namespace, job), {})
        return [p for p in found.values() if pod_labels(p).get(LABEL_UID) == uid]

    def departed(self, namespace: str, job: str, uid: str) -> list[Obj]:
        """This job object's pods the watch saw deleted, as they were last seen."""
        found = self._departed.get((namespace, job), {})
        return [p for p in found.values() if pod_labels(p).get(LABEL_UID) == uid]

    def forget(self, namespace: str, job: str) -> None:
        """The job is gone: drop what is remembered of its deleted pods."""
        self._departed.pop((namespace, job), None)

    # --- from the watch task (rest.ListWatch) ----------------------------------------------------

    def _listed(self, namespace: str, items: list[Obj]) -> None:
        fresh: dict[tuple[str, str], dict[str, Obj]] = {}
        for pod in items:
            key = _pod_key(pod)
            if key is not None:
                fresh.setdefault(key[:2], {})[key[2]] = _slim(pod)
        mine = {k for k in self._pods if not namespace or k[0] == namespace}
        changed = {k for k in mine | set(fresh) if self._pods.get(k) != fresh.get(k)}
        for k in mine - set(fresh):
            del self._pods[k]
        self._pods.update(fresh)
        self._synced.add(namespace)
        for ns, job in changed:
            self.on_change(ns, job)

    def _apply(self, kind: str | None, pod: Obj) -> None:
        key = _pod_key(pod)
        if key is None:
            return
        ns, job, name = key
        if kind == "DELETED":
            self._pods.get((ns, job), {}).pop(name, None)
            self._departed.setdefault((ns, job), {})[name] = _slim(pod)
        else:
            self._pods.setdefault((ns, job), {})[name] = _slim(pod)
            self._departed.get((ns, job), {}).pop(name, None)
        self.on_change(ns, job)


class JobWatch(ListWatch):
    """Every TrainingJob's watch events, as `on_event(type, body)`, from one list+watch task per
    namespace, instead of kopf's watch of TrainingJobs.

    kopf's cycle per watch event (memories, a Body view, three loggers, the cause detection,
    the handler registry, a patch to apply) was a sixth of the operator's CPU in a burst, only to
    wake a job's loop: every handler here only wakes loops. After a relist (the start, a cut
    watch, a 410) every listed job comes as `type` None, as kopf sends them, and a job that
    vanished since the last list as DELETED, which kopf never sent. `on_event` is called on
    the event loop."""

    def __init__(
        self,
        rest: Rest,
        namespaces: Collection[str],
        on_event: Callable[[str | None, Obj], None],
        watch_seconds: int = 300,
    ) -> None:
        super().__init__(rest, _jobs_path, namespaces, "", watch_seconds)
        self.on_event = on_event
        self._known: dict[tuple[str, str], Obj] = {}  # each job's metadata, for a DELETED

    def _listed(self, namespace: str, items: list[Obj]) -> None:
        fresh = {k: job for job in items if (k := _job_key(job)) is not None}
        gone = [
            meta
            for k, meta in self._known.items()
            if (not namespace or k[0] == namespace) and k not in fresh
        ]
        for meta in gone:
            self._known.pop((meta["namespace"], meta["name"]), None)
        self._known.update((k, _job_meta(job)) for k, job in fresh.items())
        for meta in gone:
            self.on_event("DELETED", {"metadata": meta})
        for job in fresh.values():
            self.on_event(None, job)

    def _apply(self, kind: str | None, job: Obj) -> None:
        key = _job_key(job)
        if key is None:
            return
        if kind == "DELETED":
            self._known.pop(key, None)
        else:
            self._known[key] = _job_meta(job)
        self.on_event(kind, job)


def _job_key(job: Obj) -> tuple[str, str] | None:
    meta = job.get("metadata") or {}
    if not meta.get("name") or not meta.get("namespace"):
        return None
    return str(meta["namespace"]), str(meta["name"])


def _job_meta(job: Obj) -> Obj:
    """What a DELETED event of a job needs: its name, namespace and labels (sweeps, schedules)."""
    meta = job.get("metadata") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": dict(meta.get("labels") or {}),
    }


def _jobs_path(namespace: str) -> str:
    return custom_path(GROUP, VERSION, PLURAL, namespace)


def _pods_path(namespace: str) -> str:
    return core_path("pods", namespace)


def pod_labels(pod: Obj) -> dict[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def _pod_key(pod: Obj) -> tuple[str, str, str] | None:
    meta = pod.get("metadata") or {}
    job = (meta.get("labels") or {}).get(LABEL_JOB)
    if not job or not meta.get("name"):
        return None
    return str(meta.get("namespace") or ""), str(job), str(meta["name"])


def _slim(pod: Obj) -> Obj:
    """What the passes read of a pod: metadata without managedFields, status, and of the spec
    only nodeName (pods.py). The container specs (env, volumes, probes) are most of a worker
    pod and the informer holds every pod, so they are dropped: a policy that needs more of the
    spec must add it here (test_pod_informer.py)."""
    meta = pod.get("metadata") or {}
    meta.pop("managedFields", None)
    node = (pod.get("spec") or {}).get("nodeName")
    slim: Obj = {"metadata": meta, "status": pod.get("status") or {}}
    slim["spec"] = {"nodeName": node} if node else {}
    return slim

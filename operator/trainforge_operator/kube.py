"""Thin Kubernetes API access for the reconciler: the official sync client, called from threads.

Why the `kubernetes` client and not kopf: kopf watches and dispatches but is not a general API
client; it can patch only the object being handled. The reconciler needs to list, create and delete
children, replace the status with optimistic concurrency (resourceVersion, 409 on conflict) and
post Events after the write. The sync client is well-kept and typed enough. Its calls block, so
the controller runs each one on its own ThreadPoolExecutor of `apiConcurrency` threads
(`loop.run_in_executor`), which keeps the event loop free. Responses are read as raw JSON
(`_preload_content=False`) so every object is a plain camelCase dict, exactly what the pure
builders and `decide()` use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Callable, Collection
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from trainforge_api.base import GROUP, VERSION
from trainforge_api.trainingjob import PLURAL
from trainforge_operator import metrics
from trainforge_operator.names import LABEL_JOB, LABEL_UID, MANAGED_BY, job_pods_selector
from trainforge_operator.plan import Event

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


def load_kube_config() -> None:
    """In-cluster credentials when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def read_json(resp: Any) -> Obj:
    """Parse a raw response; reading the whole body also returns its connection to the pool."""
    data = json.loads(resp.data)
    return data if isinstance(data, dict) else {}


def _release(resp: Any) -> None:
    """Discard a raw response's body and hand its connection back to the pool.

    With `_preload_content=False` urllib3 keeps the connection checked out until the body is
    read; an unread body means the next call dials and handshakes TLS again.
    """
    resp.drain_conn()
    resp.release_conn()


def transient(err: BaseException) -> bool:
    """An error of the moment (retry it): the network, or an API answer in `RETRYABLE` or 5xx.

    Anything else a pass raises, a 403 or a 404 included, was not foreseen and would fail the
    same way again; the controller marks the job Failed with it after a few tries instead of
    retrying it silently for ever."""
    if isinstance(err, ApiException):
        return retryable_status(err.status)
    return isinstance(err, urllib3.exceptions.HTTPError | OSError)


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


def _client_message(err: ValueError) -> str:
    """The client's own validation error, as `path: problem` lines without the pydantic URL."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):
            parts = [
                ".".join(str(x) for x in e.get("loc", ())[1:]) + ": " + str(e.get("msg", ""))
                for e in errors()
            ]
            return "; ".join(parts)
    return str(err).splitlines()[0]


class KubeApi:
    """The handful of API calls the reconciler makes; expected 404/409 are answers, not errors."""

    def __init__(self, api_client: Any | None = None, pool_size: int = 16) -> None:
        if api_client is None:
            # One HTTP connection per API thread (the client's default pool is cores x 5).
            configuration = client.Configuration.get_default_copy()
            configuration.connection_pool_maxsize = pool_size
            api_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.pod_informer: PodInformer | None = None  # set at the operator's startup (handlers.py)

    def _send(
        self,
        verb: str,
        resource: str,
        request: Callable[[], Any],
        *,
        expected: Collection[int] = (),
        read: bool = True,
    ) -> Obj | None:
        """Send one request (`_preload_content=False`): the parsed body when `read`, else {}
        with the connection handed back unread. A status in `expected` is an answer: None. Any
        other failure is counted (trainforge_api_errors_total), logged and raised."""
        try:
            resp = request()
        except ApiException as err:
            if err.status in expected:
                return None
            metrics.API_ERRORS.labels(verb=verb, resource=resource).inc()
            log.warning("%s %s failed: %s %s", verb, resource, err.status, err.reason)
            raise
        if not read:
            _release(resp)
            return {}
        return read_json(resp)

    def get_job(self, namespace: str, name: str) -> Obj | None:
        """The TrainingJob, or None when it does not exist."""
        return self._send(
            "get",
            PLURAL,
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
            ),
            expected=ABSENT,
        )

    def list_pods(self, namespace: str, job: str, uid: str) -> list[Obj]:
        """Pods of this job object (the uid label excludes a deleted namesake's pods): from the
        pod informer once it has listed the namespace, else from the API server."""
        informer = self.pod_informer
        cached = informer.pods(namespace, job, uid) if informer is not None else None
        if cached is not None:
            return cached
        listing = self._send(
            "list",
            "pods",
            lambda: self.core.list_namespaced_pod(
                namespace, label_selector=job_pods_selector(job, uid), _preload_content=False
            ),
        )
        items = (listing or {}).get("items") or []
        return [p for p in items if isinstance(p, dict)]

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        read = {
            "Service": self.core.read_namespaced_service,
            "ConfigMap": self.core.read_namespaced_config_map,
        }[kind]
        found = self._send(
            "get",
            kind.lower() + "s",
            lambda: read(name, namespace, _preload_content=False),
            expected=ABSENT,
            read=False,
        )
        return found is not None

    def read_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's data, or None when it does not exist."""
        cm = self._send(
            "get",
            "configmaps",
            lambda: self.core.read_namespaced_config_map(name, namespace, _preload_content=False),
            expected=ABSENT,
        )
        if cm is None:
            return None
        return {str(k): str(v) for k, v in (cm.get("data") or {}).items()}

    def update_configmap(self, obj: Obj) -> None:
        """Replace the data of an existing ConfigMap we own."""
        meta = obj["metadata"]
        body: Any = {"data": obj["data"]}
        self._send(
            "patch",
            "configmaps",
            lambda: self.core.patch_namespaced_config_map(
                meta["name"], meta["namespace"], body, _preload_content=False
            ),
            read=False,
        )

    def create(self, obj: Obj) -> bool:
        """Create a child; an AlreadyExists (409) is success (False): names are deterministic."""
        kind = obj["kind"]
        namespace = obj["metadata"]["namespace"]
        raw: Any = obj  # the client accepts plain dicts; its stubs name only the model classes
        creators: dict[str, Callable[..., Any]] = {
            "Pod": self.core.create_namespaced_pod,
            "Service": self.core.create_namespaced_service,
            "ConfigMap": self.core.create_namespaced_config_map,
        }
        create = creators.get(kind)
        if create is None:
            raise ValueError(f"the operator does not create {kind} objects")
        try:
            created = self._send(
                "create",
                kind.lower() + "s",
                lambda: create(namespace, raw, _preload_content=False),
                expected=EXISTS,
                read=False,
            )
        except ApiException as err:
            message = f"{kind} {obj['metadata']['name']}: {_server_message(err)}"
            if err.status in REJECTED:
                raise ChildRejectedError(message) from err
            raise ChildCreateError(f"{message} (HTTP {err.status})", err.status) from err
        except ValueError as err:
            # The client validates the body before sending it (pydantic, e.g. an env entry
            # without a name): the same verdict the API server would give, only earlier.
            message = (
                f"{kind} {obj['metadata']['name']} (refused by the kubernetes client before "
                f"sending it): {_client_message(err)}"
            )
            raise ChildRejectedError(message) from err
        return created is not None

    def delete_pod(self, namespace: str, name: str, uid: str = "") -> None:
        """Delete the pod `name`, and only the object with `uid` when one is given.

        Worker names are the same in every attempt, so a delete decided on an older view (an
        informer that lags, a request still in flight from a killed operator) could otherwise
        remove the next attempt's pod of that name. With the UID precondition the API server
        answers 409 instead, which means the pod meant is already gone."""
        body: Any = {"preconditions": {"uid": uid}} if uid else None
        self._send(
            "delete",
            "pods",
            lambda: self.core.delete_namespaced_pod(
                name, namespace, body=body, _preload_content=False
            ),
            expected=STALE if uid else ABSENT,
            read=False,
        )

    def replace_status(self, body: Obj, status: Obj) -> Obj | None:
        """PUT the TrainingJob's status at the observed resourceVersion: the stored object,
        None on 404/409."""
        return self.replace_custom_status(PLURAL, body, status)

    def replace_custom_status(self, plural: str, body: Obj, status: Obj) -> Obj | None:
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
        return self._send(
            "update",
            plural + "/status",
            lambda: self.custom.replace_namespaced_custom_object_status(
                GROUP,
                VERSION,
                meta["namespace"],
                plural,
                meta["name"],
                obj,
                _preload_content=False,
            ),
            expected=STALE,
        )

    def delete_job(self, namespace: str, name: str) -> None:
        self._send(
            "delete",
            PLURAL,
            lambda: self.custom.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                propagation_policy="Background",
                _preload_content=False,
            ),
            expected=ABSENT,
            read=False,
        )

    def post_event(self, body: Obj, event: Event, now: dt.datetime) -> None:
        """A core/v1 Event on the TrainingJob; failures are counted and logged, never fatal."""
        meta = body["metadata"]
        stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ev: Any = {
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
        with contextlib.suppress(ApiException):
            self._send(
                "create",
                "events",
                lambda: self.core.create_namespaced_event(
                    meta["namespace"], ev, _preload_content=False
                ),
                read=False,
            )


class PodInformer:
    """The operator's worker pods, kept current by one list+watch per namespace (an informer).

    A pass used to LIST its job's pods from the API server (about 1.5 uncached LISTs per job in
    a burst) and every pod event went through kopf's per-event machinery only to wake the job.
    Here one thread per namespace lists the worker pods once, then follows their watch (raw JSON
    lines, kept slim: see `_slim`) and calls `on_change(namespace, job)` for every
    event. `pods()` answers from memory once the first list of that namespace is in; until then
    (or after `stop()`) it returns None and the caller lists. Like any informer it can lag the
    API server by a watch event; passes are level-triggered, so the event that ends the lag
    wakes the job again. A relist after a cut or a 410 replaces the namespace's pods and wakes
    every job whose pods it saw change.
    """

    def __init__(
        self,
        core: Any,
        namespaces: Collection[str],
        selector: str,
        on_change: Callable[[str, str], None],
        watch_seconds: int = 300,
    ) -> None:
        self.core = core
        self.namespaces = list(namespaces) or [""]  # "": cluster-wide
        self.selector = selector
        self.on_change = on_change
        self.watch_seconds = watch_seconds
        self._pods: dict[tuple[str, str], dict[str, Obj]] = {}
        self._synced: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._responses: dict[str, Any] = {}

    def start(self) -> None:
        for ns in self.namespaces:
            name = f"pod-informer {ns or '(all)'}"
            threading.Thread(target=self._run, args=(ns,), name=name, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._synced.clear()
            responses = list(self._responses.values())
        for resp in responses:
            # shutdown() wakes the thread blocked reading the stream; close() would wait for the
            # lock of the buffered reader that thread holds (and block the event loop).
            with contextlib.suppress(Exception):
                resp.connection.sock.shutdown(socket.SHUT_RDWR)

    def pods(self, namespace: str, job: str, uid: str) -> list[Obj] | None:
        """This job object's pods from memory; None while the namespace is not listed yet."""
        with self._lock:
            if namespace not in self._synced and "" not in self._synced:
                return None
            found = self._pods.get((namespace, job), {})
            return [p for p in found.values() if pod_labels(p).get(LABEL_UID) == uid]

    # --- the watch thread ---------------------------------------------------------------------

    def _request(self, namespace: str, **kwargs: Any) -> Any:
        if namespace:
            return self.core.list_namespaced_pod(
                namespace, label_selector=self.selector, _preload_content=False, **kwargs
            )
        return self.core.list_pod_for_all_namespaces(
            label_selector=self.selector, _preload_content=False, **kwargs
        )

    def _run(self, namespace: str) -> None:
        while not self._stop.is_set():
            try:
                version = self._relist(namespace)
                self._follow(namespace, version)
            except Exception as err:  # any failure: list again after a pause
                if self._stop.is_set():
                    return
                log.info("pod watch in %r ended (%s); listing again", namespace or "*", err)
                self._stop.wait(1.0)

    def _relist(self, namespace: str) -> str:
        listing = read_json(self._request(namespace))
        fresh: dict[tuple[str, str], dict[str, Obj]] = {}
        for pod in listing.get("items") or []:
            key = _pod_key(pod)
            if key is not None:
                fresh.setdefault(key[:2], {})[key[2]] = _slim(pod)
        with self._lock:
            mine = {k for k in self._pods if not namespace or k[0] == namespace}
            changed = {k for k in mine | set(fresh) if self._pods.get(k) != fresh.get(k)}
            for k in mine - set(fresh):
                del self._pods[k]
            self._pods.update(fresh)
            self._synced.add(namespace)
        for ns, job in changed:
            self.on_change(ns, job)
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _follow(self, namespace: str, version: str) -> None:
        resp = self._request(
            namespace,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _request_timeout=(30, self.watch_seconds + 30),
        )
        with self._lock:
            self._responses[namespace] = resp
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    return
                event = json.loads(line)
                kind, pod = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # e.g. 410 Gone: the version is too old, list again
                    raise RuntimeError(f"watch error: {pod.get('message') or pod}")
                if kind == "BOOKMARK":
                    continue
                self._apply(kind, pod)
        finally:
            with self._lock:
                self._responses.pop(namespace, None)
            with contextlib.suppress(Exception):
                resp.release_conn()

    def _apply(self, kind: str | None, pod: Obj) -> None:
        key = _pod_key(pod)
        if key is None:
            return
        ns, job, name = key
        with self._lock:
            if kind == "DELETED":
                self._pods.get((ns, job), {}).pop(name, None)
            else:
                self._pods.setdefault((ns, job), {})[name] = _slim(pod)
        self.on_change(ns, job)


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

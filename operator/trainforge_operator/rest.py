"""A small synchronous Kubernetes REST client: paths, credentials and status codes, JSON dicts.

Why not the official `kubernetes` client: since v35 it validates every call's arguments and body
with pydantic (`validate_call`; the whole V1Pod model for a pod create), which was most of the
operator's CPU per job in a burst, and importing it costs about 28 MB of RSS (kopf alone is about
40 MB). The operator sends the plain camelCase dicts that the builders make and reads raw JSON, so
it needs no models. Credentials come from kopf's own login helpers: the service account in a pod,
else the current context of $KUBECONFIG or ~/.kube/config (tokens, client certificates, basic
auth; not exec plugins). A service-account token is read again every minute, since the kubelet
rotates it.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import kopf
import orjson
import urllib3

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"  # what kopf's service-account login says
TOKEN_REREAD_SECONDS = 60.0
REQUEST_TIMEOUT = urllib3.Timeout(connect=30, read=60)
PATCH = "application/merge-patch+json"
log = logging.getLogger(__name__)


class ApiException(Exception):  # noqa: N818  (the kubernetes client's name, whose place it takes)
    """The API server answered with an error status; `body` is its Status object as text."""

    def __init__(self, status: int, reason: str = "", body: str = "") -> None:
        super().__init__(f"({status}) {reason}")
        self.status = status
        self.reason = reason
        self.body = body


def login() -> kopf.ConnectionInfo:
    """In-cluster credentials when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig found")
    return info


def _decoded(data: str | bytes) -> bytes:
    """A kubeconfig `*-data` field: base64 of PEM."""
    return base64.b64decode(data)


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    """The TLS context of these credentials: CA, client certificate, or no verification."""
    ctx = ssl.create_default_context()
    if info.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if info.ca_path:
        ctx.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        ctx.load_verify_locations(cadata=_decoded(info.ca_data).decode())
    cert, key = info.certificate_path, info.private_key_path
    if cert or info.certificate_data:
        with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only
            if info.certificate_data:
                cert = os.path.join(tmp, "tls.crt")
                with open(cert, "wb") as f:
                    f.write(_decoded(info.certificate_data))
            if info.private_key_data:
                key = os.path.join(tmp, "tls.key")
                with open(key, "wb") as f:
                    f.write(_decoded(info.private_key_data))
            assert cert is not None
            ctx.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
    return ctx


class Rest:
    """JSON requests to one API server over a pool of `pool_size` kept-alive connections."""

    def __init__(self, info: kopf.ConnectionInfo | None = None, pool_size: int = 16) -> None:
        info = info or login()
        self.server = info.server.rstrip("/")
        self.info = info
        headers = {"Accept": "application/json", "User-Agent": "trainforge-operator"}
        self.http = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            headers=headers,
            ssl_context=ssl_context(info) if self.server.startswith("https") else None,
            cert_reqs="CERT_NONE" if info.insecure else "CERT_REQUIRED",
            retries=urllib3.Retry(3, redirect=False),
            timeout=REQUEST_TIMEOUT,
        )
        self._auth = info.as_http_headers()
        # kopf's service-account login points at the in-cluster server with the mounted token.
        in_cluster = info.server == IN_CLUSTER_SERVER and os.path.exists(SERVICE_ACCOUNT_TOKEN)
        self.token_file = SERVICE_ACCOUNT_TOKEN if in_cluster and info.token else None
        self._token_read = time.monotonic()
        self._lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        """The Authorization header; a service-account token the kubelet rotated is read again."""
        if not self.token_file or time.monotonic() - self._token_read < TOKEN_REREAD_SECONDS:
            return self._auth
        with self._lock, contextlib.suppress(OSError):
            with open(self.token_file, encoding="utf-8") as f:
                self._auth = {"Authorization": f"Bearer {f.read().strip()}"}
            self._token_read = time.monotonic()
        return self._auth

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if not params:
            return self.server + path
        return f"{self.server}{path}?{urllib.parse.urlencode(params)}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: urllib3.Timeout | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One request; an error status raises ApiException. With `stream` the body is left
        unread (the caller reads and releases it)."""
        headers = dict(self._headers())
        data = None
        if body is not None:
            data = dumps(body)
            headers["Content-Type"] = content_type
        resp = self.http.request(
            method,
            self._url(path, query),
            body=data,
            headers=headers,
            preload_content=not stream,
            timeout=timeout or REQUEST_TIMEOUT,
        )
        if resp.status >= 400:
            text = resp.data.decode("utf-8", "replace")
            resp.release_conn()
            raise ApiException(resp.status, resp.reason or "", text)
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request whose answer is a JSON object (an empty dict for any other answer)."""
        data = orjson.loads(self.request(method, path, **kwargs).data or b"{}")
        return data if isinstance(data, dict) else {}


def dumps(body: Any) -> bytes:
    """Compact JSON of a request body. orjson, like `loads` of every answer and watch event here:
    JSON was about a tenth of the operator's CPU in a burst with the standard library's."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def iter_lines(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The lines of a streamed (watch) response as they arrive."""
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line)
    if buffer:
        yield buffer


class ListWatch:
    """One thread per namespace ("": cluster-wide) that LISTs objects of one resource, then
    follows their WATCH from the list's resourceVersion; after a cut, an error or a 410 it lists
    again. What the events mean is the subclass's (`_listed`, `_apply`), called on the thread.

    Like client-go's reflector: the stream is read as raw JSON lines, with bookmarks, and ends
    after `watch_seconds` (the server's timeout; the read timeout is 30 s longer)."""

    def __init__(
        self,
        rest: Rest,
        path: Callable[[str], str],
        namespaces: Collection[str],
        selector: str = "",
        watch_seconds: int = 300,
    ) -> None:
        self.rest = rest
        self.path = path  # the resource's URL path in a namespace ("": cluster-wide)
        self.namespaces = list(namespaces) or [""]
        self.selector = selector
        self.watch_seconds = watch_seconds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._responses: dict[str, Any] = {}

    def start(self) -> None:
        for ns in self.namespaces:
            name = f"{type(self).__name__} {ns or '(all)'}"
            threading.Thread(target=self._run, args=(ns,), name=name, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            responses = list(self._responses.values())
        for resp in responses:
            # shutdown() wakes the thread blocked reading the stream; close() would wait for the
            # lock of the buffered reader that thread holds (and block the event loop).
            with contextlib.suppress(Exception):
                resp.connection.sock.shutdown(socket.SHUT_RDWR)

    # --- what the subclass does with what was read ---------------------------------------------

    def _listed(self, namespace: str, items: list[dict[str, Any]]) -> None:
        """A fresh list of the namespace's objects (after the start, a cut or a 410)."""
        raise NotImplementedError

    def _apply(self, kind: str | None, obj: dict[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""
        raise NotImplementedError

    # --- the thread ----------------------------------------------------------------------------

    def _request(self, namespace: str, **kwargs: Any) -> Any:
        query = {"labelSelector": self.selector or None, **kwargs.pop("query", {})}
        return self.rest.request("GET", self.path(namespace), query=query, **kwargs)

    def _run(self, namespace: str) -> None:
        while not self._stop.is_set():
            try:
                version = self._relist(namespace)
                self._follow(namespace, version)
            except Exception as err:  # any failure: list again after a pause
                if self._stop.is_set():
                    return
                log.info(
                    "%s watch in %r ended (%s); listing again",
                    type(self).__name__,
                    namespace or "*",
                    err,
                )
                self._stop.wait(1.0)

    def _relist(self, namespace: str) -> str:
        listing = orjson.loads(self._request(namespace).data or b"{}")
        items = [o for o in listing.get("items") or [] if isinstance(o, dict)]
        self._listed(namespace, items)
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _follow(self, namespace: str, version: str) -> None:
        query = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.watch_seconds,
        }
        timeout = urllib3.Timeout(connect=30, read=self.watch_seconds + 30)
        resp = self._request(namespace, query=query, stream=True, timeout=timeout)
        with self._lock:
            self._responses[namespace] = resp
        try:
            for line in iter_lines(resp):
                if self._stop.is_set():
                    return
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # e.g. 410 Gone: the version is too old, list again
                    raise RuntimeError(f"watch error: {obj.get('message') or obj}")
                if kind == "BOOKMARK":
                    continue
                self._apply(kind, obj)
        finally:
            with self._lock:
                self._responses.pop(namespace, None)
            with contextlib.suppress(Exception):
                resp.release_conn()


def core_path(resource: str, namespace: str = "", name: str = "") -> str:
    """/api/v1[/namespaces/NS]/RESOURCE[/NAME]."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/api/v1{where}/{resource}" + (f"/{name}" if name else "")


def custom_path(group: str, version: str, plural: str, namespace: str, name: str = "") -> str:
    """/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME] (no namespace: cluster-scoped)."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{group}/{version}{where}/{plural}" + (f"/{name}" if name else "")

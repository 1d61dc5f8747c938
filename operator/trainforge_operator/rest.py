"""A small asyncio Kubernetes REST client: paths, credentials and status codes, JSON dicts.

Why not the official `kubernetes` client: since v35 it validates every call's arguments and body
with pydantic (`validate_call`; the whole V1Pod model for a pod create), which was most of the
operator's CPU per job in a burst, and importing it costs about 28 MB of RSS (kopf alone is about
40 MB). The operator sends the plain camelCase dicts that the builders make and reads raw JSON, so
it needs no models.

Why aiohttp on the event loop rather than a blocking client in threads: a request through
urllib3 cost about twice the CPU of one through aiohttp in a burst (its pure-Python response
parsing, and the GIL and thread hand-offs of a pool of 16), and every call paid two hops between
the event loop and a worker thread. aiohttp is already there (kopf runs on it), parses HTTP in C,
and keeps the operator on one thread: reconcile passes, API calls and the watches of
`ListWatch` all run on the event loop.

Credentials come from kopf's own login helpers: the service account in a pod, else the current
context of $KUBECONFIG or ~/.kube/config (tokens, client certificates, basic auth; not exec
plugins). A service-account token is read again every minute, since the kubelet rotates it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Collection, Mapping
from typing import Any

import aiohttp
import kopf
import orjson
import yarl

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"  # what kopf's service-account login says
TOKEN_REREAD_SECONDS = 60.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
RETRIES = 3  # a request whose connection failed before an answer is sent again this often
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
    """JSON requests to one API server from the event loop: at most `pool_size` at a time over
    kept-alive connections (watches come on top, one connection each).

    The aiohttp session belongs to an event loop, so it is made on the first request from a
    running loop (the operator's), and again if a later request comes from another loop (tests
    that run several). `close()` ends it."""

    def __init__(self, info: kopf.ConnectionInfo | None = None, pool_size: int = 16) -> None:
        info = info or login()
        self.server = info.server.rstrip("/")
        self.info = info
        self.pool_size = pool_size
        self._ssl = ssl_context(info) if self.server.startswith("https") else None
        self._auth = info.as_http_headers()
        # kopf's service-account login points at the in-cluster server with the mounted token.
        in_cluster = info.server == IN_CLUSTER_SERVER and os.path.exists(SERVICE_ACCOUNT_TOKEN)
        self.token_file = SERVICE_ACCOUNT_TOKEN if in_cluster and info.token else None
        self._token_read = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(pool_size)

    def _headers(self) -> dict[str, str]:
        """The Authorization header; a service-account token the kubelet rotated is read again."""
        if not self.token_file or time.monotonic() - self._token_read < TOKEN_REREAD_SECONDS:
            return self._auth
        with contextlib.suppress(OSError):
            with open(self.token_file, encoding="utf-8") as f:
                self._auth = {"Authorization": f"Bearer {f.read().strip()}"}
            self._token_read = time.monotonic()
        return self._auth

    def _url(self, path: str, query: Mapping[str, Any] | None) -> yarl.URL:
        """The request's URL, built already encoded: yarl would otherwise parse and re-quote
        it on every request."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.server + path
        if params:
            url = f"{url}?{urllib.parse.urlencode(params)}"
        return yarl.URL(url, encoded=True)

    def session(self) -> aiohttp.ClientSession:
        """The session of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else True, limit=0, keepalive_timeout=60
            )
            headers = {"Accept": "application/json", "User-Agent": "trainforge-operator"}
            self._session = aiohttp.ClientSession(
                connector=connector, headers=headers, timeout=REQUEST_TIMEOUT
            )
            self._loop = loop
            self._slots = asyncio.Semaphore(self.pool_size)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        slotted: bool = True,
    ) -> bytes:
        """One request; the answer's body. An error status raises ApiException. A connection
        that fails before an answer (an API server restarting, a kept-alive connection it
        closed) is tried again up to `RETRIES` times: every write the operator sends is safe to
        repeat (deterministic names, resourceVersion and UID preconditions).

        `slotted=False` sends it outside the `pool_size` request slots: for Events, which their
        poster caps on its own, as client-go's event broadcaster posts beside a controller's
        workers rather than in their place."""
        session = self.session()
        headers = self._headers()
        data = None
        if body is not None:
            data = dumps(body)
            headers = {**headers, "Content-Type": content_type}
        url = self._url(path, query)
        for attempt in range(RETRIES + 1):
            try:
                slot = self._slots if slotted else contextlib.nullcontext()
                async with slot, session.request(method, url, data=data, headers=headers) as resp:
                    payload = await resp.read()
                    status, reason = resp.status, resp.reason or ""
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionResetError):
                if attempt == RETRIES:
                    raise
        if status >= 400:
            raise ApiException(status, reason, payload.decode("utf-8", "replace"))
        return payload

    async def lines(
        self, path: str, query: Mapping[str, Any], read_timeout: float
    ) -> AsyncGenerator[bytes, None]:
        """The lines of a streamed (watch) response as they arrive. Outside the request slots:
        a watch holds its connection for minutes."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        url = self._url(path, query)
        async with self.session().get(url, headers=self._headers(), timeout=timeout) as resp:
            if resp.status >= 400:
                text = (await resp.read()).decode("utf-8", "replace")
                raise ApiException(resp.status, resp.reason or "", text)
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                if b"\n" not in chunk:
                    continue
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    if line:
                        yield line
            if buffer:
                yield buffer


def dumps(body: Any) -> bytes:
    """Compact JSON of a request body. orjson, like `loads` of every answer and watch event here:
    JSON was about a tenth of the operator's CPU in a burst with the standard library's."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


class ListWatch:
    """One task per namespace ("": cluster-wide) on the event loop that LISTs objects of one
    resource, then follows their WATCH from the list's resourceVersion; after a cut, an error or
    a 410 it lists again. What the events mean is the subclass's (`_listed`, `_apply`), called
    on the event loop, between passes: no locks, no hand-offs.

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
        self.stopped = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start a task per namespace (from the running event loop)."""
        for ns in self.namespaces:
            name = f"{type(self).__name__} {ns or '(all)'}"
            self._tasks.append(asyncio.create_task(self._run(ns), name=name))

    def stop(self) -> None:
        self.stopped = True
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    # --- what the subclass does with what was read ---------------------------------------------

    def _listed(self, namespace: str, items: list[dict[str, Any]]) -> None:
        """A fresh list of the namespace's objects (after the start, a cut or a 410)."""
        raise NotImplementedError

    def _apply(self, kind: str | None, obj: dict[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""
        raise NotImplementedError

    # --- the task ------------------------------------------------------------------------------

    def _query(self, **extra: Any) -> dict[str, Any]:
        return {"labelSelector": self.selector or None, **extra}

    async def _run(self, namespace: str) -> None:
        while not self.stopped:
            try:
                version = await self._relist(namespace)
                await self._follow(namespace, version)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any failure: list again after a pause
                if self.stopped:
                    return
                log.info(
                    "%s watch in %r ended (%s); listing again",
                    type(self).__name__,
                    namespace or "*",
                    err or type(err).__name__,
                )
                await asyncio.sleep(1.0)

    async def _relist(self, namespace: str) -> str:
        data = await self.rest.request("GET", self.path(namespace), query=self._query())
        listing = orjson.loads(data or b"{}")
        items = [o for o in listing.get("items") or [] if isinstance(o, dict)]
        self._listed(namespace, items)
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    async def _follow(self, namespace: str, version: str) -> None:
        query = self._query(
            watch="true",
            resourceVersion=version,
            allowWatchBookmarks="true",
            timeoutSeconds=self.watch_seconds,
        )
        stream = self.rest.lines(self.path(namespace), query, self.watch_seconds + 30)
        async with contextlib.aclosing(stream) as lines:
            async for line in lines:
                if self.stopped:
                    return
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # e.g. 410 Gone: the version is too old, list again
                    raise RuntimeError(f"watch error: {obj.get('message') or obj}")
                if kind == "BOOKMARK":
                    continue
                self._apply(kind, obj)


def core_path(resource: str, namespace: str = "", name: str = "") -> str:
    """/api/v1[/namespaces/NS]/RESOURCE[/NAME]."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/api/v1{where}/{resource}" + (f"/{name}" if name else "")


def custom_path(group: str, version: str, plural: str, namespace: str, name: str = "") -> str:
    """/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME] (no namespace: cluster-scoped)."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{group}/{version}{where}/{plural}" + (f"/{name}" if name else "")

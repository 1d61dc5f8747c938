"""Per-job reconcile loops: observe -> decide (pure) -> act -> write status once -> Events.

kopf delivers watch events for TrainingJobs and their pods; `notify()` wakes the job's loop, which
also wakes itself when the plan asks for a requeue (backoff, deadlines, progress polling) and at
least every `resync_seconds`. One loop per job means one writer per job status. The loops are
plain asyncio tasks rather than kopf daemons because kopf puts a finalizer on objects with daemons,
and a finalizer would block `kubectl delete` whenever the operator is down; ownerReferences and
the garbage collector do the cleanup instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from trainforge_api.context import InvalidSpecError, parse_spec
from trainforge_operator import metrics
from trainforge_operator.config import OperatorConfig
from trainforge_operator.decision import decide
from trainforge_operator.kube import ChildRejectedError, KubeApi, Obj
from trainforge_operator.names import LABEL_INDEX
from trainforge_operator.plan import Observed, Plan
from trainforge_operator.progress import ProgressSource
from trainforge_operator.status import status_dict

log = logging.getLogger(__name__)
Key = tuple[str, str]
T = TypeVar("T")
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _never_reconciled(body: Obj) -> bool:
    """No status was ever written: the operator has not acted on this job (object) yet."""
    return not (body.get("status") or {}).get("phase")


@dataclass
class _Loop:
    wake: asyncio.Event
    task: asyncio.Task[None] | None = None
    last_progress: float = 0.0
    own_version: str = ""  # resourceVersion produced by our last status write
    seen_version: str = ""  # resourceVersion of the latest watch event for this job
    body: Obj | None = None  # the job as last read or written by us ...
    body_at: float = 0.0  # ... and when (monotonic)
    # (job uid, generation, monotonic time) when the Service and an up-to-date ConfigMap were seen
    children_seen: tuple[str, int, float] = ("", 0, 0.0)
    events: asyncio.Task[None] | None = None  # Events of earlier passes still being posted


class PriorityGate:
    """At most `limit` holders; waiters are admitted lowest priority first, then in arrival order.

    New jobs (priority 0) go before passes over jobs that already have their pods (priority 1),
    so a burst of submissions gets every gang created before status-only passes use the API.
    """

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # admitted and cancelled in the same tick: pass the slot on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


class Controller:
    def __init__(
        self,
        config: OperatorConfig,
        api: KubeApi,
        progress: ProgressSource,
        clock: Clock = utcnow,
    ) -> None:
        self.config = config
        self.api = api
        self.progress = progress
        self.clock = clock
        self.loops: dict[Key, _Loop] = {}
        # Blocking API calls run here, not in the loop's small default executor: with hundreds of
        # jobs the default (cores + 4 threads) queues reconciles for tens of seconds.
        self.executor = ThreadPoolExecutor(
            max_workers=config.api_concurrency, thread_name_prefix="kube-api"
        )
        # At most this many passes at once, new jobs first, then in arrival order: a burst of
        # jobs is worked through job by job instead of every job advancing one call per round.
        self.passes = PriorityGate(config.api_concurrency)
        # Events are posted off the pass, a few at a time, so they never hold up pod creation.
        self.event_posts = asyncio.Semaphore(max(1, config.api_concurrency // 4))

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(fn, *args)
        )

    # --- wiring from kopf -----------------------------------------------------------------------

    def notify(
        self,
        namespace: str,
        name: str,
        resource_version: str | None = None,
        body: Obj | None = None,
    ) -> None:
        """Something about this job changed: make sure its loop runs and wake it now.

        `body` is the job as the watch delivered it; the pass uses it instead of a GET. The watch
        echo of our own status write (same resourceVersion) is not a change.
        """
        key = (namespace, name)
        loop = self.loops.get(key)
        if loop is not None and resource_version:
            loop.seen_version = resource_version
        if loop is not None and body is not None and resource_version != loop.own_version:
            self._remember(loop, body)
        if (
            loop is not None
            and resource_version
            and resource_version == loop.own_version
            and loop.task is not None
            and not loop.task.done()
        ):
            return
        if loop is None:
            loop = _Loop(wake=asyncio.Event(), seen_version=resource_version or "")
            if body is not None:
                self._remember(loop, body)
            self.loops[key] = loop
        if loop.task is None or loop.task.done():
            loop.task = asyncio.create_task(self._run(key, loop), name=f"reconcile {key}")
        loop.wake.set()

    def forget(self, namespace: str, name: str) -> None:
        """The job is gone: stop its loop and drop its metrics."""
        key = (namespace, name)
        loop = self.loops.pop(key, None)
        if loop is not None and loop.task is not None and loop.task is not asyncio.current_task():
            loop.task.cancel()
        metrics.JOB_STATE.pop(key, None)
        with contextlib.suppress(KeyError):
            metrics.JOB_RESTARTS.remove(namespace, name)

    async def stop(self) -> None:
        tasks = [t for lp in self.loops.values() for t in (lp.task, lp.events) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loops.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- the loop -------------------------------------------------------------------------------

    async def _run(self, key: Key, loop: _Loop) -> None:
        backoff = 1.0
        while True:
            try:
                new_job = loop.body is None or _never_reconciled(loop.body)
                async with self.passes.slot(0 if new_job else 1):
                    loop.wake.clear()  # wake-ups while queued are covered by this pass
                    requeue = await self.reconcile(key, loop)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile of %s/%s failed; retrying in %.0fs", *key, backoff)
                requeue, backoff = backoff, min(backoff * 2, 60.0)
            if requeue is None and key not in self.loops:
                return
            if requeue is None:
                requeue = self.config.resync_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.wake.wait(), timeout=min(requeue, 3600.0))
            if key not in self.loops:
                return

    async def reconcile(self, key: Key, loop: _Loop) -> float | None:
        """One pass; returns seconds until the next wanted pass (None: only on events)."""
        namespace, name = key
        started = time.perf_counter()
        body = self._known_body(loop)
        if body is None:
            body = await self._call(self.api.get_job, namespace, name)
            self._remember(loop, body)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return None
        uid = body["metadata"].get("uid", "")
        metrics.JOB_RESTARTS.labels(namespace=namespace, job=name)  # per-job series start at 0
        if _never_reconciled(body):
            # Nothing was written for this job yet, so nothing is known to exist: plan every
            # child and let an AlreadyExists (left by a pass whose status write was lost) pass.
            pods: list[Obj] = []
            has_svc, has_cm, cm_data = False, False, None
        else:
            pods, (has_svc, has_cm, cm_data) = await asyncio.gather(
                self._call(self.api.list_pods, namespace, name, uid), self._children(loop, body)
            )
        progress = await self._maybe_progress(body, pods, loop)
        observed = Observed(
            body=body,
            pods=pods,
            has_service=has_svc,
            has_configmap=has_cm,
            now=self.clock(),
            progress=progress,
            configmap_data=cm_data,
        )
        plan = decide(observed, self.config)
        try:
            committed = await self.execute(body, plan, loop)
        except ChildRejectedError as err:
            log.warning("%s/%s: %s", namespace, name, err)
            plan = decide(dataclasses.replace(observed, rejected=str(err)), self.config)
            committed = await self.execute(body, plan, loop)
        if committed:
            self._record(key, body, plan)
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        return plan.requeue_after

    def _known_body(self, loop: _Loop) -> Obj | None:
        """The job as we last read or wrote it, while the watch reports no newer version of it
        (a pod event or a timer woke this pass) and it is younger than resync_seconds."""
        if loop.body is None or not loop.seen_version:
            return None
        if time.monotonic() - loop.body_at >= self.config.resync_seconds:
            return None
        version = loop.body.get("metadata", {}).get("resourceVersion")
        return loop.body if version == loop.seen_version else None

    def _remember(self, loop: _Loop, body: Obj | None) -> None:
        loop.body, loop.body_at = body, time.monotonic()

    async def _children(self, loop: _Loop, body: Obj) -> tuple[bool, bool, dict[str, str] | None]:
        """Service exists? ConfigMap exists, and its data? Re-read after a spec change and at
        least every resync_seconds; in between they are known to exist and be current."""
        meta = body["metadata"]
        uid, generation, seen_at = loop.children_seen
        fresh = time.monotonic() - seen_at < self.config.resync_seconds
        if uid == meta.get("uid") and generation == meta.get("generation") and fresh:
            return True, True, None
        namespace, name = meta["namespace"], meta["name"]
        has_svc, cm_data = await asyncio.gather(
            self._call(self.api.exists, "Service", namespace, name),
            self._call(self.api.read_configmap_data, namespace, f"{name}-context"),
        )
        return has_svc, cm_data is not None, cm_data

    async def _maybe_progress(self, body: Obj, pods: list[Obj], loop: _Loop) -> Obj | None:
        """Rank 0's progress, at most every progress_interval_seconds, only while Running."""
        if (body.get("status") or {}).get("phase") != "Running":
            return None
        now = time.monotonic()
        if now - loop.last_progress < self.config.progress_interval_seconds * 0.9:
            return None
        rank0 = next(
            (p for p in pods if (p["metadata"].get("labels") or {}).get(LABEL_INDEX) == "0"),
            None,
        )
        if rank0 is None:
            return None
        loop.last_progress = now
        port = int(((body.get("spec") or {}).get("metrics") or {}).get("port") or 9400)
        return await self.progress.fetch(rank0, port)

    async def execute(self, body: Obj, plan: Plan, loop: _Loop | None = None) -> bool:
        """Act, write the status once if it changed, then send Events (only after the write).

        Returns False when the status write lost a conflict: the pass is redone from scratch.
        """
        meta = body["metadata"]
        namespace = meta["namespace"]
        created = await asyncio.gather(*(self._call(self.api.create, o) for o in plan.create))
        for obj, new in zip(plan.create, created, strict=True):
            what = "created" if new else "exists"
            log.info("%s %s/%s", what, obj["kind"], obj["metadata"]["name"])
        await asyncio.gather(*(self._call(self.api.update_configmap, o) for o in plan.update))
        for obj in plan.update:
            log.info("updated %s/%s", obj["kind"], obj["metadata"]["name"])
        if loop is not None:
            loop.children_seen = (
                str(meta.get("uid")),
                int(meta.get("generation") or 0),
                time.monotonic(),
            )
        if plan.delete_pods:
            log.info(
                "deleting pods %s of %s/%s", ", ".join(plan.delete_pods), namespace, meta["name"]
            )
            await asyncio.gather(
                *(self._call(self.api.delete_pod, namespace, n) for n in plan.delete_pods)
            )
        new_status = status_dict(plan.status)
        if new_status != (body.get("status") or {}):
            stored = await self._call(self.api.replace_status, body, new_status)
            if stored is None:
                log.info("status of %s/%s changed underneath; retrying", namespace, meta["name"])
                if loop is not None:
                    self._remember(loop, None)
                plan.requeue_after = 0.2
                return False
            if loop is not None:
                loop.own_version = str(stored.get("metadata", {}).get("resourceVersion", ""))
                self._remember(loop, stored)
        if plan.events:
            posting = self._post_events(body, plan, loop.events if loop else None)
            if loop is None:
                await posting
            else:
                loop.events = asyncio.create_task(posting, name=f"events {meta['name']}")
        if plan.delete_job:
            log.info("deleting %s/%s: ttlSecondsAfterFinished elapsed", namespace, meta["name"])
            await self._call(self.api.delete_job, namespace, meta["name"])
        return True

    async def _post_events(self, body: Obj, plan: Plan, earlier: asyncio.Task[None] | None) -> None:
        """Post a pass's Events after the earlier passes' ones (per-job order is kept)."""
        now = self.clock()
        if earlier is not None and not earlier.done():
            with contextlib.suppress(Exception):
                await earlier
        for event in plan.events:
            async with self.event_posts:  # post_event logs failures, never raises
                await self._call(self.api.post_event, body, event, now)

    def _record(self, key: Key, body: Obj, plan: Plan) -> None:
        """Counters on transitions (the plan only flags a transition once) and the job table."""
        old_phase = (body.get("status") or {}).get("phase")
        phase = plan.status.phase or "Pending"
        if any(e.reason == "Created" for e in plan.events):
            metrics.JOBS_CREATED.inc()
        if plan.restarted:
            metrics.JOB_RESTARTS.labels(namespace=key[0], job=key[1]).inc()
        if plan.time_to_running is not None:
            metrics.TIME_TO_RUNNING.observe(plan.time_to_running)
        if phase != old_phase and phase == "Succeeded":
            metrics.JOBS_SUCCEEDED.inc()
        if phase != old_phase and phase == "Failed":
            metrics.JOBS_FAILED.labels(reason=plan.failed_reason or "Unknown").inc()
        pool, pending = "", 0
        try:
            spec = parse_spec(body)
            pool = spec.node_pool or self.config.default_node_pool
            if phase in ("Pending", "Starting"):
                running = plan.status.workers.running + plan.status.workers.succeeded
                pending = spec.resources.gpus * max(spec.parallelism.nodes - running, 0)
        except InvalidSpecError:
            pass
        metrics.JOB_STATE[key] = metrics.JobState(phase, pool, pending)

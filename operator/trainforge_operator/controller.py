"""Per-job reconcile loops: observe -> decide (pure) -> act -> write status once -> Events.

`kube.JobWatch` delivers watch events for TrainingJobs, and `kube.PodInformer` those of their
pods (each one list+watch per namespace, started in handlers.py); `notify()` wakes the job's
loop, which also wakes itself when the plan asks for a requeue (backoff, deadlines, progress
polling) and at least every `resync_seconds`. One loop per job means one writer per job status.
The loops are plain asyncio tasks rather than kopf daemons because kopf puts a finalizer on
objects with daemons, and a finalizer would block `kubectl delete` whenever the operator is
down; ownerReferences and the garbage collector do the cleanup instead.

What saves API calls or orders them lives beside this loop: `admission.py` (at most
apiConcurrency passes, new jobs first), `cache.py` (the job body and its children between
passes), `events.py` (Events posted off the pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from trainforge_api.context import InvalidSpecError
from trainforge_operator import decision, keyloops, kube, kueue, metrics, pods
from trainforge_operator.admission import EVENTS, KNOWN_JOB, NEW_JOB, PriorityGate
from trainforge_operator.cache import TRUST_SECONDS, JobCache
from trainforge_operator.config import OperatorConfig
from trainforge_operator.events import EventPoster
from trainforge_operator.kube import ChildCreateError, ChildRejectedError, KubeApi, Obj
from trainforge_operator.names import context_name, service_name
from trainforge_operator.plan import Observed, Plan, QueueView
from trainforge_operator.policies import queue
from trainforge_operator.progress import ProgressSource
from trainforge_operator.specs import spec_of
from trainforge_operator.status import status_dict

log = logging.getLogger(__name__)
Key = tuple[str, str]
T = TypeVar("T")
Clock = Callable[[], dt.datetime]
CONFLICT_REQUEUE = 0.2  # the status write lost a race: observe again almost at once
# A known job's pass waits this long after its wake-up, so that the events of one change of a
# gang (the scheduler binds its pods, the kubelets start them, all within milliseconds) are
# seen by one pass rather than one each. A new job's first pass (its pods) never waits.
COALESCE_SECONDS = 0.05
MAX_ERROR_BACKOFF = 60.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _never_reconciled(body: Obj) -> bool:
    """No status was ever written: the operator has not acted on this job (object) yet."""
    return not (body.get("status") or {}).get("phase")


def _defers_status(body: Obj, plan: Plan, all_new: bool) -> bool:
    """The first pass of a new job leaves its status to the next pass, which its new pods
    bring at once (their informer events), and which writes what it then sees.

    Why: in a burst the first pass's write of `Pending` is one PUT per job, made while other
    new jobs wait for their pods; the next pass usually finds the gang scheduled or running
    and writes that instead, so the job gets one write fewer (2.7 -> 1.9 per job in the
    control-plane bench) and its first pass ends a round trip sooner. Only a pass that created
    every one of its pods itself defers (their ADDED events are then certain to come), and only
    a plain `Pending`. The status decided stands meanwhile as the job's old status
    (`JobCache.unwritten`), so its Events and counters are not repeated. A crash before the
    next write leaves pods and no status: the next operator plans every child, lets the
    AlreadyExists pass and adopts the attempt from the pods' labels, as after a lost write."""
    if not _never_reconciled(body) or plan.status.phase != "Pending":
        return False
    made_pods = any(o["kind"] == "Pod" for o in plan.create)
    return made_pods and all_new and not plan.delete_pods and not plan.update


@dataclass
class _Loop:
    """One job's reconcile task, what wakes it, and what it remembers between passes."""

    wake: asyncio.Event
    task: asyncio.Task[None] | None = None
    last_progress: float = 0.0  # monotonic time of the last progress poll
    errors: int = 0  # consecutive passes that failed with an unforeseen error
    cache: JobCache = field(default_factory=JobCache)

    def running(self) -> bool:
        return self.task is not None and not self.task.done()


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
        self.stopping = False
        self.passes = PriorityGate(config.api_concurrency)
        self.events = EventPoster(
            functools.partial(self._call, self.api.post_event),
            clock,
            at_once=max(1, config.api_concurrency // 4),
            turn=lambda: self.passes.slot(EVENTS),
        )

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """One API call (a KubeApi coroutine)."""
        if self.stopping:  # a pass still running at shutdown ends as cancelled, not as a crash
            raise asyncio.CancelledError("the operator is stopping")
        return await fn(*args)

    # --- wiring from the watches --------------------------------------------------------------

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
        if loop is None:
            loop = self.loops[key] = _Loop(wake=asyncio.Event())
        news = loop.cache.watched(resource_version, body)
        if not news and loop.running():
            return
        if not loop.running():
            loop.task = asyncio.create_task(self._run(key, loop), name=f"reconcile {key}")
        loop.wake.set()

    def forget(self, namespace: str, name: str) -> None:
        """The job is gone: stop its loop and drop its metrics."""
        key = (namespace, name)
        keyloops.cancel(self.loops, key)
        metrics.JOB_STATE.pop(key, None)
        if self.api.pod_informer is not None:
            self.api.pod_informer.forget(namespace, name)
        with contextlib.suppress(KeyError):
            metrics.JOB_RESTARTS.remove(namespace, name)

    async def stop(self) -> None:
        self.stopping = True
        await keyloops.stop_all(self.loops, self.events.stop())

    # --- the loop -------------------------------------------------------------------------------

    async def _run(self, key: Key, loop: _Loop) -> None:
        backoff = 1.0
        while True:
            try:
                body = loop.cache.body
                new_job = body is None or (_never_reconciled(body) and loop.cache.unwritten is None)
                if not new_job:
                    await asyncio.sleep(COALESCE_SECONDS)
                async with self.passes.slot(NEW_JOB if new_job else KNOWN_JOB):
                    loop.wake.clear()  # wake-ups while queued are covered by this pass
                    requeue = await self.reconcile(key, loop)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.exception("reconcile of %s/%s failed; retrying in %.0fs", *key, backoff)
                requeue, backoff = backoff, min(backoff * 2, MAX_ERROR_BACKOFF)
                await self._unforeseen(key, loop, err)
            else:
                loop.errors = 0
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
        started = time.perf_counter()
        observed = await self.observe(key, loop)
        if observed is None:
            self.forget(*key)
            return None
        plan = decision.decide(observed, self.config)
        try:
            committed = await self.execute(key, observed.body, plan, loop)
        except (ChildRejectedError, ChildCreateError) as err:
            # Decide again knowing the refusal: InvalidSpec (400/422), else say it and retry.
            log.warning("%s/%s: %s", *key, err)
            if isinstance(err, ChildRejectedError):
                refused = dataclasses.replace(observed, rejected=str(err))
            else:
                refused = dataclasses.replace(observed, create_failed=str(err))
            plan = decision.decide(refused, self.config)
            committed = await self.execute(key, observed.body, plan, loop)
        if committed:
            self._record(key, observed.body, plan)
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        return plan.requeue_after

    async def _unforeseen(self, key: Key, loop: _Loop, err: Exception) -> None:
        """Count an error that is not the API's or the network's; after max_reconcile_errors in
        a row, mark the job Failed with it (only the status: later passes clean up)."""
        if kube.transient(err):
            return
        loop.errors += 1
        if loop.errors < self.config.max_reconcile_errors:
            return
        error = f"{type(err).__name__}: {err}"[:512]
        try:
            body = await self._call(self.api.get_job, *key)
            if body is None:
                return
            observed = Observed(
                body=body, pods=[], has_service=True, has_configmap=True, now=self.clock()
            )
            plan = decision.unforeseen(observed, self.config, error)
            if await self.execute(key, body, plan, loop):
                self._record(key, body, plan)
                loop.errors = 0
        except Exception:
            log.exception("could not mark %s/%s Failed", *key)

    # --- observe --------------------------------------------------------------------------------

    async def observe(self, key: Key, loop: _Loop) -> Observed | None:
        """The job and its children as decide() needs them; None when the job is gone."""
        namespace, name = key
        body = loop.cache.current_body(self._trust_seconds())
        if body is None:
            body = await self._call(self.api.get_job, namespace, name)
            loop.cache.remember(body)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        if loop.cache.unwritten is not None:
            if _never_reconciled(body):
                body = {**body, "status": loop.cache.unwritten}  # _defers_status says why
            else:  # a status is stored after all (an earlier life of the operator wrote it)
                loop.cache.unwritten = None
        metrics.JOB_RESTARTS.labels(namespace=namespace, job=name)  # per-job series start at 0
        if _never_reconciled(body):
            # Nothing was written for this job yet, so nothing is known to exist: plan every
            # child and let an AlreadyExists (left by a pass whose status write was lost) pass.
            found: list[Obj] = []
            has_svc, has_cm, cm_data = False, False, None
        else:
            uid = body["metadata"].get("uid", "")
            cached = self.api.cached_pods(namespace, name, uid)
            if cached is not None:  # the pod informer answers from memory: no thread hop
                found = cached
                has_svc, has_cm, cm_data = await self._children(loop, body)
            else:
                found, (has_svc, has_cm, cm_data) = await asyncio.gather(
                    self._call(self.api.list_pods, namespace, name, uid),
                    self._children(loop, body),
                )
        found = loop.cache.as_deleting(found)
        departed = self.api.departed_pods(namespace, name, body["metadata"].get("uid", ""))
        # One after the other: each is usually an answer from memory, and gather() would wrap
        # both in Tasks on every pass.
        progress = await self._maybe_progress(body, found, loop)
        queue_view = await self._queue_view(body)
        return Observed(
            body=body,
            pods=found,
            has_service=has_svc,
            has_configmap=has_cm,
            now=self.clock(),
            progress=progress,
            configmap_data=cm_data,
            departed=departed,
            queue=queue_view,
        )

    def _trust_seconds(self) -> float:
        """How long the cached body and children stand in for reads (cache.py says why)."""
        return max(self.config.resync_seconds, TRUST_SECONDS)

    async def _queue_view(self, body: Obj) -> QueueView | None:
        """Kueue's objects for a job it admits (policies/queue.py): the Workload; the LocalQueue
        while not admitted (to name its ClusterQueue); the admitted ResourceFlavors; the
        WorkloadPriorityClass before the Workload exists. None when Kueue is not involved."""
        local_queue = kueue.queue_name(body)
        if not self.config.kueue or local_queue is None or not queue.needs_view(body):
            return None
        meta = body["metadata"]
        namespace = meta["namespace"]
        name = kueue.workload_name(meta["name"], meta.get("uid", ""))
        wl = await self._call(self.api.get_kueue, kueue.WORKLOADS, name, namespace)
        if wl is None:
            klass = kueue.priority_class(body)
            wpc = None
            if klass is not None:
                wpc = await self._call(self.api.get_kueue, "workloadpriorityclasses", klass)
            lq = await self._call(self.api.get_kueue, "localqueues", local_queue, namespace)
            value = (wpc or {}).get("value")
            return QueueView(
                workload=None,
                local_queue=lq,
                priority=int(value) if isinstance(value, int) else None,
                priority_missing=klass is not None and wpc is None,
            )
        if not kueue.admission(wl).admitted:
            lq = await self._call(self.api.get_kueue, "localqueues", local_queue, namespace)
            return QueueView(workload=wl, local_queue=lq)
        names = kueue.flavor_names(wl)
        found = await asyncio.gather(
            *(self._call(self.api.get_kueue, "resourceflavors", n) for n in names)
        )
        flavors = {n: f for n, f in zip(names, found, strict=True) if f is not None}
        return QueueView(workload=wl, flavors=flavors)

    async def _children(self, loop: _Loop, body: Obj) -> tuple[bool, bool, dict[str, str] | None]:
        """Service exists? ConfigMap exists, and its data? Read only when the cache does not
        know them (a spec change, or `cache.TRUST_SECONDS` passed)."""
        meta = body["metadata"]
        if loop.cache.children_known(meta, self._trust_seconds()):
            return True, True, None
        namespace, name = meta["namespace"], meta["name"]
        has_svc, cm_data = await asyncio.gather(
            self._call(self.api.exists, "Service", namespace, service_name(name)),
            self._call(self.api.read_configmap_data, namespace, context_name(name)),
        )
        return has_svc, cm_data is not None, cm_data

    async def _maybe_progress(self, body: Obj, found: list[Obj], loop: _Loop) -> Obj | None:
        """Rank 0's progress while Running: on every pass from a source read in memory (the
        annotation), at most every progress_interval_seconds from one that costs a request."""
        if (body.get("status") or {}).get("phase") != "Running":
            return None
        now = time.monotonic()
        interval = self.config.progress_interval_seconds * 0.9
        if self.progress.polled and now - loop.last_progress < interval:
            return None
        rank0 = pods.rank0(found)
        if rank0 is None:
            return None
        loop.last_progress = now
        port = int(((body.get("spec") or {}).get("metrics") or {}).get("port") or 9400)
        return await self.progress.fetch(rank0, port)

    # --- act ------------------------------------------------------------------------------------

    async def execute(self, key: Key, body: Obj, plan: Plan, loop: _Loop) -> bool:
        """Create, write the status once if it changed, then delete, then send Events.

        The order makes every pass's outcome durable before the pass destroys evidence: pods
        are deleted only after the status that explains why (Succeeded, Failed with its
        lastFailure, Restarting) is stored, so a pass cut short by a crash or a lost write is
        decided the same way by the next one. What is created before the write is idempotent
        (deterministic names) or rebuilt from the pods' labels (the attempt: `gang.adopt`).
        Returns False when the status write lost a conflict: the pass is redone from scratch.
        """
        all_new = await self._create(body, plan, loop)
        if _defers_status(body, plan, all_new):
            loop.cache.unwritten = status_dict(plan.status)
        elif not await self._write_status(body, plan, loop):
            return False
        await self._delete(body, plan, loop)
        await self._write_workload(plan)
        if plan.events:
            self.events.send(key, body, plan.events)
        if plan.delete_job:
            log.info("deleting %s/%s: ttlSecondsAfterFinished elapsed", *key)
            await self._call(self.api.delete_job, *key)
        return True

    async def _create(self, body: Obj, plan: Plan, loop: _Loop) -> bool:
        """Create and update children (a refused create raises ChildRejectedError or
        ChildCreateError); True when every create made a new object (none existed)."""
        meta = body["metadata"]
        if plan.workload_create is not None:
            new_wl = await self._call(self.api.create_workload, plan.workload_create)
            log.info("%s Workload %s", "created" if new_wl else "exists",
                     plan.workload_create["metadata"]["name"])  # fmt: skip
        created = await asyncio.gather(*(self._call(self.api.create, o) for o in plan.create))
        if plan.create:  # one line per pass, not per child: logging is not free in a burst
            made = [f"{o['kind']}/{o['metadata']['name']}" for o in plan.create]
            fresh = [m for m, new in zip(made, created, strict=True) if new]
            known = [m for m, new in zip(made, created, strict=True) if not new]
            log.info(
                "%s/%s: created %s%s",
                meta["namespace"],
                meta["name"],
                ", ".join(fresh) or "nothing",
                f"; already existed: {', '.join(known)}" if known else "",
            )
        await asyncio.gather(*(self._call(self.api.update_configmap, o) for o in plan.update))
        for obj in plan.update:
            log.info("updated %s/%s", obj["kind"], obj["metadata"]["name"])
        loop.cache.saw_children(meta)
        return all(created)

    async def _write_workload(self, plan: Plan) -> None:
        """The Workload status the queue policy decided (released after an eviction, Finished),
        once the job's own status says why. A conflict (Kueue wrote it meanwhile) is left to
        the next pass, which decides again from the fresh Workload."""
        if plan.workload_status is None:
            return
        meta = plan.workload_status["metadata"]
        stored = await self._call(self.api.replace_workload_status, plan.workload_status)
        if stored is None:
            log.info("Workload %s/%s changed underneath; retrying", meta["namespace"], meta["name"])
            plan.requeue_after = CONFLICT_REQUEUE
        else:
            log.info("updated the status of Workload %s/%s", meta["namespace"], meta["name"])

    async def _delete(self, body: Obj, plan: Plan, loop: _Loop) -> None:
        """Delete the pods the plan gave up, once the status saying why is stored; each by the
        UID observed (kube.delete_pod), so no delete reaches a newer attempt's pod. Later
        passes see them as terminating until the informer does (cache.as_deleting)."""
        if not plan.delete_pods:
            return
        meta = body["metadata"]
        namespace = meta["namespace"]
        log.info("deleting pods %s of %s/%s", ", ".join(plan.delete_pods), namespace, meta["name"])
        await asyncio.gather(
            *(
                self._call(self.api.delete_pod, namespace, n, plan.delete_uids.get(n, ""))
                for n in plan.delete_pods
            )
        )
        loop.cache.deleting(plan.delete_uids.values())

    async def _write_status(self, body: Obj, plan: Plan, loop: _Loop) -> bool:
        """PUT the status at the observed resourceVersion, only if it changed; False on a 409."""
        new_status = status_dict(plan.status)
        # A status the first pass left unwritten stands in `body` but is not stored yet.
        stored_status = {} if loop.cache.unwritten is not None else (body.get("status") or {})
        if new_status == stored_status:
            return True
        stored = await self._call(self.api.replace_status, body, new_status)
        if stored is None:
            meta = body["metadata"]
            log.info(
                "status of %s/%s changed underneath; retrying", meta["namespace"], meta["name"]
            )
            loop.cache.remember(None)
            plan.requeue_after = CONFLICT_REQUEUE
            return False
        loop.cache.wrote(stored)
        return True

    # --- metrics --------------------------------------------------------------------------------

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
        metrics.record_recovery(plan.restart_kind, plan.recovery)
        if plan.queued_seconds is not None:
            metrics.JOB_QUEUED_SECONDS.observe(plan.queued_seconds)
        if phase != old_phase and phase == "Succeeded":
            metrics.JOBS_SUCCEEDED.inc()
        if phase != old_phase and phase == "Failed":
            metrics.JOBS_FAILED.labels(reason=plan.failed_reason or "Unknown").inc()
        pool, pending = "", 0
        try:
            spec = spec_of(body)
            pool = spec.node_pool or self.config.default_node_pool
            if phase in ("Pending", "Starting"):
                running = plan.status.workers.running + plan.status.workers.succeeded
                pending = spec.resources.gpus * max(spec.parallelism.nodes - running, 0)
        except InvalidSpecError:
            pass
        metrics.JOB_STATE[key] = metrics.JobState(phase, pool, pending)

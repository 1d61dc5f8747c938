"""Per-schedule reconcile loops: observe -> decide (pure) -> act -> write status once -> Events.

The same shape as the TrainingJob controller: kopf watch events on TrainingSchedules and on their
runs call `notify()`, which wakes the schedule's loop; the loop also wakes itself at the plan's
`requeue_after` (the next cron time, the next data check, a poll while runs are active). Acting
means: delete runs (Replace, history), create the due run (a deterministic name, so AlreadyExists
is success), write the champion pointer, then the status (only when changed, at the observed
resourceVersion), then the Events.

`clock` is the schedule's clock and `speed` how much faster than real time it runs (tests only:
a 30x clock makes an every-minute schedule fire every two seconds); sleeps are divided by it.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from trainforge_api.trainingschedule import PLURAL, TrainingScheduleSpec
from trainforge_operator.events import EventPoster
from trainforge_operator.keyloops import Key, KeyedController, KeyLoops
from trainforge_operator.kube import ChildRejectedError, KubeApi
from trainforge_operator.ownerapi import OwnerApi
from trainforge_operator.plan import Event
from trainforge_operator.schedules import metrics
from trainforge_operator.schedules.decision import (
    ScheduleObserved,
    SchedulePlan,
    decide,
    wants_data,
)
from trainforge_operator.schedules.runs import LABEL_SCHEDULE, Run, read_run
from trainforge_operator.schedules.storage import DataError, fingerprint, write_pointer
from trainforge_operator.status import parse_time

log = logging.getLogger(__name__)
Obj = dict[str, Any]
CONFLICT_REQUEUE = 0.2


def key_of(meta: Obj) -> Key:
    return str(meta["namespace"]), str(meta["name"])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ScheduleController(KeyedController):
    events: EventPoster

    def __init__(
        self,
        api: KubeApi,
        clock: Callable[[], dt.datetime] = utcnow,
        speed: float = 1.0,
        threads: int = 4,
    ) -> None:
        self.kube = api
        self.api = OwnerApi(api, PLURAL, LABEL_SCHEDULE)
        self.now = clock
        self.speed = speed
        self.loops = KeyLoops(
            "schedule", self.reconcile, idle=3600.0, speed=speed, min_wait=0.05, logger=log
        )
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="schedules")
        self.events = EventPoster(functools.partial(self._call, api.post_event), self.now, 2)
        metrics.register_collector()

    def _forgotten(self, key: Key) -> None:
        metrics.SCHEDULES.pop(key, None)

    # --- one pass -------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        body = await self._call(self.api.get, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return None
        uid = body["metadata"].get("uid")
        children = await self._call(self.api.list_children, namespace, name)
        runs = [
            run
            for child in children
            if any(o.get("uid") == uid for o in child["metadata"].get("ownerReferences") or [])
            and (run := read_run(child)) is not None
        ]
        now = self.now()
        data, error = await self._look_at_data(body, runs, now)
        plan = decide(ScheduleObserved(body, runs, now, data, error))
        if not await self._act(body, plan):
            return CONFLICT_REQUEUE * self.speed
        self._record(key, body, plan)
        return plan.requeue_after

    async def _look_at_data(
        self, body: Obj, runs: list[Run], now: dt.datetime
    ) -> tuple[str | None, str | None]:
        if not wants_data(body, runs, now):
            return None, None
        spec = TrainingScheduleSpec.model_validate(body["spec"])
        uri = spec.job_template.data.uri
        assert uri is not None  # wants_data checked it
        new_data = spec.new_data
        by = new_data.by if new_data is not None else "mtime"
        manifest = new_data.manifest_path if new_data is not None else "manifest.json"
        template = spec.job_template
        endpoint = template.data.s3_endpoint or template.artifacts.s3_endpoint
        try:
            return await self._blocking(fingerprint, uri, by, manifest, endpoint), None
        except DataError as err:
            log.warning("schedule %s: %s", body["metadata"]["name"], err)
            return None, str(err)

    async def _act(self, body: Obj, plan: SchedulePlan) -> bool:
        """Carry out the plan; False when the status write lost a conflict."""
        meta = body["metadata"]
        namespace = meta["namespace"]
        for run in plan.delete:
            log.info("deleting run %s/%s", namespace, run)
            await self._call(self.kube.delete_job, namespace, run)
        for job in plan.create:
            try:
                new = await self._call(self.api.create_child, job)
                log.info(
                    "%s run %s/%s",
                    "created" if new else "exists",
                    namespace,
                    job["metadata"]["name"],
                )
            except ChildRejectedError as err:
                self._rejected(plan, job["metadata"]["name"], str(err))
        if plan.pointer is not None:
            p = plan.pointer
            try:
                await self._blocking(write_pointer, p.uri, p.content, p.endpoint)
            except Exception as err:  # the status must not name a champion the pointer does not
                reason = f"cannot write the champion pointer {p.uri}: {err}; retrying"
                self.events.send(
                    key_of(meta), body, [Event("Warning", "PointerWriteFailed", reason)]
                )
                raise
            log.info("wrote champion pointer %s -> %s", p.uri, p.content.get("run"))
        status = plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")
        if status != (body.get("status") or {}):
            stored = await self._call(self.api.replace_status, body, status)
            if stored is None:
                log.info(
                    "status of schedule %s/%s changed underneath; retrying", namespace, meta["name"]
                )
                return False
        if plan.events:
            self.events.send((namespace, meta["name"]), body, plan.events)
        return True

    @staticmethod
    def _rejected(plan: SchedulePlan, run: str, reason: str) -> None:
        """The API server refused the run: it does not exist, and the Event says why."""
        st = plan.status
        st.active = [r for r in st.active if r != run]
        st.runs = [r for r in st.runs if r.name != run]
        st.message = f"run {run} was rejected: {reason}"
        plan.events = [
            e for e in plan.events if not (e.reason == "RunCreated" and run in e.message)
        ]
        plan.events.append(Event("Warning", "RunRejected", f"{reason}; fix spec.jobTemplate"))

    def _record(self, key: Key, body: Obj, plan: SchedulePlan) -> None:
        for result in plan.results:
            metrics.RUNS.labels(namespace=key[0], schedule=key[1], result=result).inc()
        st = plan.status
        since = parse_time(st.last_successful_time) or parse_time(
            body["metadata"].get("creationTimestamp")
        )
        spec_metric = ((body.get("spec") or {}).get("promotion") or {}).get("metric")
        metrics.SCHEDULES[key] = metrics.ScheduleFacts(
            last_success=since or self.now(),
            champion_metric=st.champion.metric if st.champion is not None else None,
            metric_name=str(spec_metric or "test_accuracy"),
        )

"""Per-sweep reconcile loops: observe -> decide_sweep (pure) -> act -> write status once -> Events.

The same design as the TrainingJob controller, smaller: one asyncio task per sweep, woken by the
sweep's watch events and by its trials' (the handlers map a trial to its sweep by label), and at
least every `resync_seconds`. Nothing is remembered between passes: the Optuna study is rebuilt
from the trials each time (sweepdecision.py), so an operator killed mid-sweep loses nothing and
never creates a trial twice (deterministic names; AlreadyExists is success).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from trainforge_api.trainingsweep import PLURAL, TrainingSweepSpec
from trainforge_operator import sweepmetrics
from trainforge_operator.config import OperatorConfig
from trainforge_operator.events import EventPoster
from trainforge_operator.keyloops import Key, KeyedController, KeyLoops
from trainforge_operator.kube import ChildRejectedError, KubeApi, Obj
from trainforge_operator.objectstore import write_bytes
from trainforge_operator.ownerapi import OwnerApi
from trainforge_sweep.trials import LABEL_SWEEP

if TYPE_CHECKING:
    from trainforge_operator.sweepdecision import ReportRequest, SweepObserved, SweepPlan

log = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SweepController(KeyedController):
    events: EventPoster

    def __init__(
        self, config: OperatorConfig, api: KubeApi, clock: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.config = config
        self.kube = api
        # a refused trial is reported with the API server's whole answer
        self.api = OwnerApi(api, PLURAL, LABEL_SWEEP, why_rejected=lambda err: err.body)
        self.clock = clock
        self.loops = KeyLoops("sweep", self.reconcile, idle=config.resync_seconds, logger=log)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sweep-report")
        self.events = EventPoster(functools.partial(self._call, api.post_event), clock, at_once=2)
        sweepmetrics.register_collector()

    def _forgotten(self, key: Key) -> None:
        sweepmetrics.SWEEP_STATE.pop(key, None)

    async def observe(self, key: Key) -> SweepObserved | None:
        namespace, name = key
        body = await self._call(self.api.get, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        trials = await self._call(self.api.list_children, namespace, name)
        uid = body["metadata"].get("uid")
        mine = [t for t in trials if _owned_by(t, uid)]
        warm: list[Obj] = []
        for other in (body.get("spec") or {}).get("warmStartFrom") or []:
            if other != name:
                warm.extend(await self._call(self.api.list_children, namespace, other))
        from trainforge_operator.sweepdecision import SweepObserved  # Optuna: see _decide

        return SweepObserved(body=body, trials=mine, warm=warm, now=self.clock())

    async def reconcile(self, key: Key) -> float | None:
        """One pass; returns seconds until the next wanted pass."""
        observed = await self.observe(key)
        if observed is None:
            self.forget(*key)
            return None
        plan = _decide(observed)
        try:
            await self._act(observed, plan)
        except ChildRejectedError as err:
            log.warning("sweep %s/%s: %s", *key, err)
            plan = _decide(dataclasses.replace(observed, rejected=str(err)))
        if plan.report is not None:
            error = await self._blocking(_upload_report, key[1], plan.report)
            _record_report(plan, observed, error)
        if await self._write_status(observed.body, plan):
            if plan.events:
                self.events.send(key, observed.body, plan.events)
            self._record(key, observed.body, plan)
        else:
            return 0.2
        return plan.requeue_after

    async def _act(self, observed: SweepObserved, plan: SweepPlan) -> None:
        """Create trials, annotate (prune, bookkeeping) and delete (retention) trials."""
        namespace = observed.body["metadata"]["namespace"]
        current = {t["metadata"]["name"]: t for t in observed.trials}
        created = await asyncio.gather(*(self._call(self.api.create_child, t) for t in plan.create))
        for body, new in zip(plan.create, created, strict=True):
            verb = "created" if new else "exists"
            log.info("%s trial %s/%s", verb, namespace, body["metadata"]["name"])
        for name, wanted in plan.annotate.items():
            have = (current.get(name, {}).get("metadata", {}).get("annotations")) or {}
            if any(have.get(k) != v for k, v in wanted.items()):
                await self._call(self.api.annotate_child, namespace, name, wanted)
        for name in plan.delete:
            if name in current:
                await self._call(self.kube.delete_job, namespace, name)

    async def _write_status(self, body: Obj, plan: SweepPlan) -> bool:
        new = plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")
        if new == (body.get("status") or {}):
            return True
        return await self._call(self.api.replace_status, body, new) is not None

    def _record(self, key: Key, body: Obj, plan: SweepPlan) -> None:
        trials = plan.status.trials.model_dump(exclude={"total", "done"})
        try:
            metric = TrainingSweepSpec.model_validate(body.get("spec") or {}).objective.metric
        except ValueError:
            metric = ""
        best = plan.status.best_trial.value if plan.status.best_trial else None
        sweepmetrics.SWEEP_STATE[key] = sweepmetrics.SweepState(trials, metric, best)


def _owned_by(trial: Obj, uid: str | None) -> bool:
    """A trial of this sweep object, not of a deleted namesake (its owner's uid)."""
    refs = trial["metadata"].get("ownerReferences") or []
    return not uid or any(r.get("uid") == uid for r in refs)


def _decide(observed: SweepObserved) -> SweepPlan:
    """decide_sweep, imported on first use: sweepdecision imports Optuna (about 20 MB of RSS and
    0.2 s at start-up), which operators that never see a sweep should not pay for."""
    from trainforge_operator.sweepdecision import decide_sweep

    return decide_sweep(observed)


def _upload_report(name: str, request: ReportRequest) -> str | None:
    """Render the sweep report (Optuna's plotly figures) and write it; the error, or None.
    Any failure is reported in status and retried later, never raised: a sweep keeps going
    without its report."""
    from trainforge_sweep.report import render  # plotly: loaded by the first report only

    try:
        page = render(request.spec, name, request.records)
        write_bytes(request.uri, page.encode(), request.endpoint)
    except Exception as err:  # fsspec backends and plotly raise their own types
        log.warning("sweep %s: report not written to %s: %s", name, request.uri, err)
        return f"{type(err).__name__}: {err}"
    log.info("sweep %s: report written to %s (%d bytes)", name, request.uri, len(page))
    return None


def _record_report(plan: SweepPlan, observed: SweepObserved, error: str | None) -> None:
    from trainforge_operator.sweepdecision import record_report

    record_report(plan, observed.body.get("status"), observed.now, error)

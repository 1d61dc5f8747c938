"""kopf registration only: settings at startup, the watches that wake reconciles, cleanup.

TrainingJobs and their worker pods are watched by the operator's own list+watch tasks on the
event loop (`kube.JobWatch`, `kube.PodInformer`), started here; kopf watches TrainingSweeps and
TrainingSchedules (few objects), and runs startup, login, probes and cleanup.

All logic lives in `controller.py` (loops), `decision.py` and `policies/` (decisions) and
`builders.py` (children). Event handlers never patch objects, so kopf stores nothing on
TrainingJobs or pods and no finalizer is added: deleting a job never waits for the operator. The
handlers are async on purpose: they run on the operator's event loop, where the reconcile loops
live (kopf would run sync handlers in a thread).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import kopf

from trainforge_api.base import GROUP, VERSION
from trainforge_api.trainingschedule import PLURAL as SCHEDULES
from trainforge_api.trainingsweep import PLURAL as SWEEP_PLURAL
from trainforge_operator import rest
from trainforge_operator.config import OperatorConfig
from trainforge_operator.controller import Controller
from trainforge_operator.kube import JobWatch, KubeApi, PodInformer
from trainforge_operator.names import LABEL_JOB, LABEL_MANAGED, MANAGED_BY
from trainforge_operator.progress import make_source
from trainforge_operator.schedules.controller import ScheduleController
from trainforge_operator.schedules.runs import LABEL_SCHEDULE
from trainforge_operator.sweepcontroller import SweepController
from trainforge_sweep.trials import LABEL_SWEEP

log = logging.getLogger(__name__)


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a deep-copied "essence" of every object on every watch event, for diffs that
    only on.create/on.update handlers use. There are none here (the handlers only watch), so
    the essence is empty: that was the operator's largest CPU cost in a burst of 200 jobs."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


# The pod informer (kube.PodInformer) asks the apiserver for worker pods only, so other teams'
# pods on a shared cluster are never sent, decoded or processed.
WORKER_POD_SELECTOR = f"{LABEL_MANAGED}={MANAGED_BY},{LABEL_JOB}"


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings: storage that never writes to our objects, watch timeouts, pod selector."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 310
    settings.watching.connect_timeout = 30
    settings.watching.reconnect_backoff = 2.0
    settings.networking.request_timeout = 60
    settings.posting.level = logging.WARNING


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = memo.get("config")
    if not isinstance(config, OperatorConfig):
        config = OperatorConfig()
        memo["config"] = config
    configure(settings)
    if not isinstance(memo.get("controller"), Controller):
        api = KubeApi(pool_size=config.api_concurrency)
        memo["controller"] = Controller(config, api, make_source(config.progress_source))
    if not isinstance(memo.get("sweeps"), SweepController):
        memo["sweeps"] = SweepController(config, memo["controller"].api)
    if not isinstance(memo.get("schedules"), ScheduleController):
        memo["schedules"] = ScheduleController(memo["controller"].api)
    if not isinstance(memo.get("pod_informer"), PodInformer):  # startup may be retried
        memo["pod_informer"] = start_pod_informer(memo["controller"], config)
    if not isinstance(memo.get("job_watch"), JobWatch):
        memo["job_watch"] = start_job_watch(
            memo["controller"], memo["sweeps"], memo["schedules"], config
        )
    log.info("trainforge operator started (namespaces: %s)", config.namespaces or "all")


def start_pod_informer(controller: Controller, config: OperatorConfig) -> PodInformer:
    """Worker pods are watched by our own informer, not kopf: a pass reads its pods from
    memory instead of a LIST, and a pod event costs a dict update instead of a kopf cycle."""
    rest_client = controller.api.rest
    informer = PodInformer(rest_client, config.namespaces, WORKER_POD_SELECTOR, controller.notify)
    controller.api.pod_informer = informer
    informer.start()
    return informer


def start_job_watch(
    controller: Controller,
    sweeps: SweepController,
    schedules: ScheduleController,
    config: OperatorConfig,
) -> JobWatch:
    """TrainingJobs are watched by our own list+watch (kube.JobWatch), not kopf: each event
    only wakes loops, so kopf's per-event cycle bought nothing for its cost."""
    on_event = functools.partial(job_event, controller, sweeps, schedules)
    watch = JobWatch(controller.api.rest, config.namespaces, on_event)
    watch.start()
    return watch


def job_event(
    controller: Controller,
    sweeps: SweepController,
    schedules: ScheduleController,
    kind: str | None,
    body: dict[str, Any],
) -> None:
    """A TrainingJob changed or is gone: wake its loop (with the body, which stands in for a
    GET), its sweep's (a trial's progress or phase) and its schedule's (a run's verdict)."""
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not namespace or not name:
        return
    if kind == "DELETED":
        controller.forget(namespace, name)
    else:
        controller.notify(namespace, name, meta.get("resourceVersion"), body)
    labels = meta.get("labels") or {}
    if LABEL_SWEEP in labels:
        sweeps.notify(namespace, labels[LABEL_SWEEP])
    if LABEL_SCHEDULE in labels:
        schedules.notify(namespace, labels[LABEL_SCHEDULE])


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf watches with the credentials our own client uses (rest.login), so it never falls
    back to logging in through the `kubernetes` client, which the operator does not install."""
    return rest.login()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    watch = memo.get("job_watch")
    if isinstance(watch, JobWatch):
        watch.stop()
    informer = memo.get("pod_informer")
    if isinstance(informer, PodInformer):
        informer.stop()
    controller = memo.get("controller")
    if isinstance(controller, Controller):
        await controller.stop()
    sweeps = memo.get("sweeps")
    if isinstance(sweeps, SweepController):
        await sweeps.stop()
    schedules = memo.get("schedules")
    if isinstance(schedules, ScheduleController):
        await schedules.stop()
    if isinstance(controller, Controller):
        await controller.api.close()


@kopf.on.probe(id="reconcilers")
def reconcilers(memo: kopf.Memo, **_: Any) -> int:
    """Liveness detail on /healthz: number of jobs being reconciled."""
    controller = memo.get("controller")
    return len(controller.loops) if isinstance(controller, Controller) else 0


# --- TrainingSweeps (logic in sweepcontroller.py) ------------------------------------------------


def _sweeps(memo: Any) -> SweepController:
    sweeps = memo.get("sweeps")
    if not isinstance(sweeps, SweepController):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return sweeps


@kopf.on.event(GROUP, VERSION, SWEEP_PLURAL)
async def trainingsweep_event(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    if namespace is None:
        return
    if event.get("type") == "DELETED":
        _sweeps(memo).forget(namespace, name)
    else:
        _sweeps(memo).notify(namespace, name)


# --- TrainingSchedules (logic in schedules/controller.py) ---------------------------------------


def _schedules(memo: Any) -> ScheduleController:
    schedules = memo.get("schedules")
    if not isinstance(schedules, ScheduleController):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return schedules


@kopf.on.event(GROUP, VERSION, SCHEDULES)
async def trainingschedule_event(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    if namespace is None:
        return
    if event.get("type") == "DELETED":
        _schedules(memo).forget(namespace, name)
    else:
        _schedules(memo).notify(namespace, name)

"""Entrypoint `trainforge-operator`: load the config, serve metrics, run kopf.

Runs standalone (no peering) unless the config names a peering object; watches the configured
namespaces or the whole cluster; liveness on `:<healthPort>/healthz`; JSON logs by default.
The event loop is uvloop's: everything the operator does (passes, API calls, watches) runs on
it, and libuv's loop and TLS cost less CPU per request than asyncio's pure-Python ones
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Any

import kopf
import uvloop

from trainforge_operator import handlers as _handlers  # noqa: F401  (registers the handlers)
from trainforge_operator import metrics
from trainforge_operator.config import OperatorConfig, load_config
from trainforge_operator.controller import Controller
from trainforge_operator.schedules.controller import ScheduleController

GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)


def configure_logging(config: OperatorConfig) -> None:
    fmt = kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(
        debug=config.log_level == "DEBUG",
        quiet=config.log_level in ("WARNING", "ERROR"),
        log_format=fmt,
    )
    logging.getLogger().setLevel(config.log_level)
    if config.log_level != "DEBUG":
        # kopf logs every handled watch event at INFO; our own reconcile logs say what happened.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


async def run_operator(
    config: OperatorConfig,
    *,
    controller: Controller | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    liveness: bool = True,
    schedules: ScheduleController | None = None,
) -> None:
    """Run kopf with this config until stopped (tests pass their own controller and flags)."""
    memo: dict[str, Any] = {"config": config}
    if controller is not None:
        memo["controller"] = controller
    if schedules is not None:
        memo["schedules"] = schedules
    await kopf.operator(
        standalone=config.peering is None,
        peering_name=config.peering,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if liveness else None,
        memo=kopf.Memo(memo),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def tune_gc() -> None:
    """Leave what the imports built to itself, and collect young objects less often.

    After start-up the heap holds hundreds of thousands of long-lived objects (kopf, pydantic,
    aiohttp, the models) that every full collection would walk again, and each watch event or
    answer decodes into hundreds of short-lived dicts that trip a young collection every 700
    allocations: the collector was a tenth of the operator's CPU in a burst. `gc.freeze()` moves
    the start-up objects out of its sight; a larger first threshold makes young collections
    rarer (each still frees what a pass left behind)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def main() -> None:
    config = load_config()
    configure_logging(config)
    metrics.serve(config.metrics_port)
    tune_gc()
    uvloop.run(run_operator(config))


if __name__ == "__main__":
    main()

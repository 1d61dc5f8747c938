"""The least a TrainingJob controller can do: the control-plane benchmark's floor.

Watches TrainingJobs in one namespace and, for each new one, creates the operator's own children
(headless Service, context ConfigMap, worker pods, built by ``trainforge_operator.builders``) with
32 creates in flight. No status writes, no Events, no reads, no failure handling. Run by
``bench.control_plane --floor`` in place of the operator, in its own process like the operator,
so apply -> all pods created measured against it is what this machine allows any operator.

Configured like the operator: TRAINFORGE_CONFIG (node pools, the namespace, the health port) and
KUBECONFIG. Usage: python -m bench.floor_controller
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from typing import Any

from trainforge_api.context import parse_spec
from trainforge_operator import builders
from trainforge_operator.config import OperatorConfig, load_config
from trainforge_operator.kube import JobWatch, KubeApi

IN_FLIGHT = 32  # creates at once


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def children(stored: dict[str, Any], config: OperatorConfig) -> list[dict[str, Any]]:
    job, spec = builders.JobRef.from_body(stored), parse_spec(stored)
    return [
        builders.build_service(job),
        builders.build_configmap(job, spec, config),
        *builders.build_gang(job, spec, config, attempt=0),
    ]


async def serve() -> None:
    """Create the children of every TrainingJob the watch reports ADDED (the operator's own
    client and list+watch, so the floor pays what the operator pays per request)."""
    config = load_config()
    kube = KubeApi(pool_size=IN_FLIGHT)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", config.health_port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tasks: set[asyncio.Task[Any]] = set()

    def on_event(kind: str | None, body: dict[str, Any]) -> None:
        if kind != "ADDED":  # None: listed at the start, before the burst
            return
        creates = (kube.create(obj) for obj in children(body, config))
        task = asyncio.ensure_future(asyncio.gather(*creates))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    JobWatch(kube.rest, config.namespaces[:1], on_event).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve())

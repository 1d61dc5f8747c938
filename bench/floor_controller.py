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

import concurrent.futures
import http.server
import threading
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from trainforge_api.base import GROUP, VERSION
from trainforge_api.context import parse_spec
from trainforge_api.trainingjob import PLURAL
from trainforge_operator import builders
from trainforge_operator.config import OperatorConfig, load_config
from trainforge_operator.kube import KubeApi


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


def serve() -> None:
    config = load_config()
    namespace = config.namespaces[0]
    k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    api_client = k8s.ApiClient()
    custom, kube = k8s.CustomObjectsApi(api_client), KubeApi(pool_size=48)
    pool = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="create")
    listing: dict[str, Any] = custom.list_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, VERSION, namespace, PLURAL
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", config.health_port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stream = k8s_watch.Watch().stream(  # type: ignore[no-untyped-call]
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        resource_version=listing["metadata"]["resourceVersion"],
    )
    for event in stream:
        if event["type"] == "ADDED":
            for obj in children(event["object"], config):
                pool.submit(kube.create, obj)


if __name__ == "__main__":
    serve()

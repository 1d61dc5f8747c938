# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""Fuzzing the front door: generated and mutated specs against a real API server, operator on.

For every spec from `fuzz_front_door.fuzz_specs` (fixed seed): a rejection at apply must name
the field; an accepted spec must run (its gang created) or be marked InvalidSpec with a reason
(or be Suspended, when the spec says so, or fail with reason CreateFailed quoting the API
server when it kept refusing the children, e.g. a PriorityClass that does not exist); a spec the
operator ran must pass the worker runtime's own check of its context; and the operator must log
no traceback.

`TF_FUZZ_SPECS` sets how many (default 150, what the integration tier runs); `make test-fuzz`
runs 1,000. The figures are printed at the end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_front_door import SEED, fuzz_specs
from kubernetes import client as k8s
from operator_fixture import (  # noqa: F401  (fixtures)
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    OperatorHandle,
    kube_client,
    operator_config_for,
    trainforge_crd,
)

from trainforge_api.context import JobContext
from trainforge_runtime.config import validate_context

COUNT = int(os.environ.get("TF_FUZZ_SPECS", "150"))
BATCH = 50
# How long the operator retries creates the API server refuses (403, 429, 5xx) before failing
# the job with reason CreateFailed: short, so such a job settles within a batch.
CREATE_FAILURE_SECONDS = 15.0
NAMES_A_FIELD = re.compile(r"\b(spec|metadata)(\.[A-Za-z][\w\[\]]*)*\b")


class Tracebacks(logging.Handler):
    """Every log record that prints a traceback (log.exception, a kopf handler that raised),
    and every error the operator's own modules log. kopf's logged retries of API calls (the API
    server answering 429 while the CRD's storage initialises) are the API's, not a crash."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.name.startswith("trainforge_operator")
        if record.exc_info or (ours and record.levelno >= logging.ERROR):
            self.records.append(record)


@pytest.fixture
def fuzz_operator(kube_client: Any, trainforge_crd: None, namespace: str) -> Iterator[None]:
    """The operator on this namespace, giving up on refused creates after a few seconds."""
    config = operator_config_for(namespace).model_copy(
        update={"create_failure_seconds": CREATE_FAILURE_SECONDS}
    )
    handle = OperatorHandle(config=config, api_client=kube_client)
    handle.start()
    try:
        yield
    finally:
        handle.stop()


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


def apply(c: Cluster, name: str, spec: Any) -> str | None:
    """None when the API server accepts the job, else the error message it gave."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": spec,
    }
    try:
        c.custom.create_namespaced_custom_object(GROUP, VERSION, c.ns, PLURAL, body)
    except k8s.ApiException as err:
        try:
            return str(json.loads(err.body or "{}").get("message") or err.reason)
        except ValueError:
            return str(err.body or err.reason)
    return None


def outcome(c: Cluster, name: str) -> str | None:
    """'ran', 'invalid', 'refused at create', 'suspended', or None while the operator has not
    settled the job."""
    if c.job(name) is None:
        return _outcome_of_deleted(c, name)
    status = c.status(name)
    conditions = {x["type"]: x for x in status.get("conditions") or []}
    invalid = conditions.get("InvalidSpec")
    if invalid and invalid.get("status") == "True" and invalid.get("message"):
        return "invalid"
    failed = conditions.get("Failed") or {}
    if failed.get("reason") == "CreateFailed" and "(HTTP " in (failed.get("message") or ""):
        return REFUSED
    created = conditions.get("Created")
    if created and created.get("status") == "True" and c.pods(name):
        return "ran"
    if status.get("phase") == "Suspended":
        return "suspended"
    if (
        created
        and created.get("status") == "True"
        and status.get("phase") in ("Failed", "Succeeded")
    ):
        return "ran"  # a gang that already ended (a tiny activeDeadlineSeconds, say)
    return None


def _outcome_of_deleted(c: Cluster, name: str) -> str | None:
    """A job already deleted by its own ttlSecondsAfterFinished (a fuzzed spec may ask for 1 s):
    its Events outlive it and say how it ended."""
    reasons = {reason for reason, _ in c.events(name)}
    if "InvalidSpec" in reasons:
        return "invalid"
    if "CreateFailed" in reasons:
        return REFUSED
    if "Created" in reasons:  # the gang was created, then the job ended and went
        return "ran"
    return None


REFUSED = "refused at create"
OUTCOMES = ("ran", "invalid", REFUSED, "suspended")


def settle(c: Cluster, names: list[str], timeout: float = 300) -> dict[str, str]:
    """Each job's outcome once all have one; past `timeout`, the status of those without."""
    deadline = time.monotonic() + timeout
    verdicts: dict[str, str | None] = dict.fromkeys(names)
    while True:
        for name in [n for n, v in verdicts.items() if v is None]:
            verdicts[name] = outcome(c, name)
        if all(verdicts.values()) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {
        n: v or f"phase {c.status(n).get('phase')!r}: {c.status(n).get('message', '')[:200]}"
        for n, v in verdicts.items()
    }


def runtime_rejects(c: Cluster, name: str) -> str:
    """The worker runtime's verdict on the context the operator rendered ('' = runs)."""
    cm = c.core.read_namespaced_config_map(f"{name}-context", c.ns)
    try:
        validate_context(JobContext.model_validate(json.loads(cm.data["context.json"])))
    except (SystemExit, Exception) as err:
        return f"{type(err).__name__}: {err}"
    return ""


@pytest.mark.timeout(120 + 3 * COUNT)  # generation, then about 1 s per spec on 2 cores
def test_fuzzed_specs_at_the_front_door(
    kube_client: Any, namespace: str, fuzz_operator: None, tracebacks: Tracebacks
) -> None:
    c = Cluster(kube_client, namespace)
    specs = fuzz_specs(COUNT, SEED)
    figures: Counter[str] = Counter()
    problems: list[str] = []
    refusals: list[str] = []  # the API server's reasons, printed: they are the server's verdict
    for start in range(0, len(specs), BATCH):
        accepted: list[str] = []
        for i in range(start, min(start + BATCH, len(specs))):
            mutation, spec = specs[i]
            name = f"fz-{i:04d}"
            error = apply(c, name, spec)
            if error is None:
                accepted.append(name)
                continue
            figures["rejected at apply"] += 1
            if not NAMES_A_FIELD.search(error):
                problems.append(f"spec #{i} ({mutation or 'generated'}): rejection names no "
                                f"field: {error[:300]}")  # fmt: skip
        figures["accepted"] += len(accepted)
        settled = settle(c, accepted)
        for name, verdict in settled.items():
            figures[verdict if verdict in OUTCOMES else "unsettled"] += 1
            if verdict not in OUTCOMES:
                problems.append(f"{name}: neither ran nor marked InvalidSpec: {verdict}")
            if verdict == REFUSED:
                refusals.append(f"{name}: {c.status(name).get('message', '')[:300]}")
            if verdict == "ran" and (why := runtime_rejects(c, name)):
                figures["ran but the runtime rejects"] += 1
                problems.append(f"{name}: accepted by the operator, rejected by the runtime: {why}")
        c.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    figures["operator tracebacks"] = len(tracebacks.records)
    for record in tracebacks.records[:5]:
        cause = ""
        if record.exc_info and record.exc_info[1] is not None:
            cause = f" ({type(record.exc_info[1]).__name__}: {str(record.exc_info[1])[:300]})"
        problems.append(f"operator logged: {record.getMessage()[:300]}{cause}")
    print(f"\nfront-door fuzz (seed {SEED}): {COUNT} specs; " + json.dumps(dict(figures)))
    for refusal in refusals:
        print(f"  {REFUSED}: {refusal}")
    assert figures["rejected at apply"] + figures["accepted"] == COUNT
    assert not problems, "\n".join(problems)

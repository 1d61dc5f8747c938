"""kopf settings the operator applies at startup (pure: no cluster)."""

from __future__ import annotations

import kopf

from trainforge_operator.handlers import WORKER_POD_SELECTOR, configure

PODS = kopf.Resource("", "v1", "pods", kind="Pod", namespaced=True)
JOBS = kopf.Resource(
    "trainforge.io", "v1alpha1", "trainingjobs", kind="TrainingJob", namespaced=True
)
SERVICES = kopf.Resource("", "v1", "services", kind="Service", namespaced=True)


def test_pod_watch_is_filtered_by_the_apiserver() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.watching.label_selectors.collect(PODS) == [WORKER_POD_SELECTOR]
    managed, job = WORKER_POD_SELECTOR.split(",")
    assert managed == "app.kubernetes.io/managed-by=trainforge-operator"
    assert job == "trainforge.io/job-name"  # exists, any value


def test_trainingjob_and_other_watches_are_not_filtered() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.watching.label_selectors.collect(JOBS) == []
    assert settings.watching.label_selectors.collect(SERVICES) == []


def test_nothing_is_stored_on_watched_objects() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.persistence.diffbase_storage.build(body={"spec": {"x": 1}}) == {}

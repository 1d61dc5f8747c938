"""kopf settings the operator applies at startup (pure: no cluster)."""

from __future__ import annotations

import subprocess
import sys

import kopf

from trainforge_operator.handlers import WORKER_POD_SELECTOR, configure

PODS = kopf.Resource("", "v1", "pods", kind="Pod", namespaced=True)
JOBS = kopf.Resource(
    "trainforge.io", "v1alpha1", "trainingjobs", kind="TrainingJob", namespaced=True
)
SERVICES = kopf.Resource("", "v1", "services", kind="Service", namespaced=True)


def test_worker_pod_selector_names_only_our_workers() -> None:
    managed, job = WORKER_POD_SELECTOR.split(",")
    assert managed == "app.kubernetes.io/managed-by=trainforge-operator"
    assert job == "trainforge.io/job-name"  # exists, any value


def test_kopf_watches_neither_pods_nor_trainingjobs() -> None:
    """Worker pods are watched by kube.PodInformer (test_pod_informer.py) and TrainingJobs by
    kube.JobWatch (test_job_watch.py), not kopf."""
    from trainforge_operator import handlers  # noqa: F401  (registers the handlers)

    watched = {s.any_name for s in kopf.get_default_registry()._watching.get_all_selectors()}
    assert watched == {"trainingsweeps", "trainingschedules"}


def test_trainingjob_and_other_watches_are_not_filtered() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.watching.label_selectors.collect(JOBS) == []
    assert settings.watching.label_selectors.collect(SERVICES) == []


def test_nothing_is_stored_on_watched_objects() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.persistence.diffbase_storage.build(body={"spec": {"x": 1}}) == {}


def test_the_operator_starts_without_optuna() -> None:
    """Optuna (about 20 MB of RSS) loads with the first sweep, not at start-up."""
    code = "import sys, trainforge_operator.handlers; sys.exit('optuna' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

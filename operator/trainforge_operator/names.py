"""The names trainforge puts on what it owns: labels, the progress annotation, child names.

One home, at the bottom of the operator, so the builders that write them and the watch, the API
adapter, the progress source and the policies that select and read by them cannot drift apart,
and none of those imports the builders just for a string.
"""

from __future__ import annotations

from trainforge_api.trainingjob import WORKER_SUFFIX

LABEL_JOB = "trainforge.io/job-name"
LABEL_UID = "trainforge.io/job-uid"  # tells a job's pods from those of a deleted namesake
LABEL_INDEX = "trainforge.io/replica-index"  # the node rank
LABEL_ATTEMPT = "trainforge.io/attempt"  # the gang attempt (0, then +1 per restart)
LABEL_ROLE = "trainforge.io/role"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "trainforge-operator"  # also the source component of the operator's Events
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # the one job label copied to its children
PROGRESS_ANNOTATION = "trainforge.io/progress"
CONTAINER = "worker"


def service_name(job: str) -> str:
    """The headless Service: named like the job, it is the pods' DNS subdomain."""
    return job


def context_name(job: str) -> str:
    """The ConfigMap holding the JobContext JSON."""
    return f"{job}-context"


def worker_name(job: str, index: int) -> str:
    """Pod (and hostname) of node rank `index`; the same in every attempt."""
    return f"{job}{WORKER_SUFFIX}{index}"


def job_pods_selector(job: str, uid: str) -> str:
    """Label selector of this job object's pods."""
    return f"{LABEL_JOB}={job},{LABEL_UID}={uid}"

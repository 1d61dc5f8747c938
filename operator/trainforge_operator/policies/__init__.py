"""The reconcile policies, one module each; `decision.decide()` says which applies when.

- `gang`: create the children and the missing workers; report Pending, Starting, Running;
- `failure`: classify a failed pod, find the root cause, restart the gang or fail the job;
- `recovery`: InPlace recovery (recreate only the failed worker), elastic sizes, membership;
- `images`: a worker whose image can never be pulled fails the job;
- `timeouts`: activeDeadlineSeconds, maxPendingSeconds, progressTimeoutSeconds (onStall);
- `success`: every worker exited 0; absorb rank 0's termination summary;
- `suspend`: runPolicy.suspend and resuming;
- `queue`: Kueue admission: no pods until the Workload is admitted, stop on eviction;
- `stop`: the stop-reason annotation (a sweep pruning a trial) ends the job as Stopped;
- `ttl`: a finished job's cleanPodPolicy and ttlSecondsAfterFinished;
- `failure_rules`: runPolicy.failurePolicy.rules and the defaults: which action a failure gets;
- `recovered`: status.lastRecovery: when a restarted gang trains again, and the steps it redid;
- `state`: the `Pass` they all read from and write to.

Every function is pure: it reads the observed state and writes the new status and the plan.
"""

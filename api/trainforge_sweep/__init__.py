"""The sweep engine shared by the operator's sweep controller and `trainforge sweep --local`.

A package of its own, beside `trainforge_api` (pure pydantic, imports no Optuna) and below both
`trainforge_operator` and `trainforge_runtime` (neither may import the other): it maps a sweep's
search space to Optuna distributions, rebuilds the study from trial records, asks for
suggestions, decides pruning and completion. It reads no cluster and no clock: the caller turns
its trials (TrainingJobs, or local runs) into `TrialRecord`s and passes the time.
"""

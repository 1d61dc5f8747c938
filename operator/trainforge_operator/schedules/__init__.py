"""TrainingSchedule: retrain on a cron schedule or on new data, promote only a better model.

Layers (import-linter): `controller` (loop, API calls, storage) > `decision` (pure) >
`cron | promotion | runs` (pure pieces). `storage` (fsspec: data fingerprints, the champion
pointer) and `api` (Kubernetes calls) are used by the controller only.
"""

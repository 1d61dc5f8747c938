"""trainforge's contract: the CRD models, their cross-field rules and the worker runtime contract.

Pure pydantic and the standard library (no kopf, kubernetes or torch), so both the operator image
and the worker image ship it, and neither side has to import the other:

- `trainingjob`: the TrainingJob spec and status (the CRD schema is generated from them);
- `rules`: every cross-field rule once, as a Python check and the CEL rule the API server runs;
- `context`: the JobContext each worker reads, and spec -> context;
- `exitcodes`, `termination`, `progress`: what a worker reports back and how the operator reads it.
"""

# An image a user might bring: Python and torch, but no trainforge (no runtime, no contract package,
# no SDK, no pydantic, prometheus_client or NVML binding). The standalone launcher must run jobs in it
# (spec.launcher, docs/byo-code.md; tests/e2e/test_byo_image_e2e.py).
# Built FROM the worker image so it shares its multi-GB layers: the delta is a few MB.
#   docker build -t trainforge/torch-plain:0.1.0 --build-arg WORKER_IMAGE=trainforge/worker:0.1.0 \
#     -f hack/images/torch-plain.Dockerfile hack/images
ARG WORKER_IMAGE=trainforge/worker:0.1.0
FROM ${WORKER_IMAGE}
USER root
RUN python -m pip uninstall -y -q pydantic pydantic-core prometheus-client nvidia-ml-py \
    && rm -rf /opt/trainforge /usr/local/bin/trainforge-launch
ENV PYTHONPATH="" TRAINFORGE_CONTEXT="" TRAINFORGE_RUN_DIR=""
# Fail the build if anything of trainforge's is still importable; torch must be.
RUN python -c "import torch" \
    && for m in trainforge_runtime trainforge_api trainforge_sdk trainforge_launcher pydantic \
                prometheus_client pynvml; do \
         if python -c "import $m" 2>/dev/null; then echo "$m is importable" >&2; exit 1; fi; \
       done
USER 1000:1000
ENTRYPOINT ["python3"]

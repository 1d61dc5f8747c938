# trainforge operator image: kopf operator, the `operator` extra only (no torch).
# Non-root (uid 65532) and read-only-root-filesystem friendly: nothing is written at run time
# except under /tmp, which the chart mounts as an emptyDir.
# Build from the repository root (hack/build-images.sh passes the offline base image):
#   docker build -t trainforge/operator:0.1.0 --build-arg BASE_IMAGE=trainforge/python-base:3.11-bookworm .
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG PIP_ARGS=""
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp

# Dependencies first (from pyproject.toml: base + the `operator` extra), so a code change only
# re-runs the cheap --no-deps install below.
COPY pyproject.toml README.md /src/
RUN python -c 'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["operator"]))' > /tmp/req.txt \
    && python -m pip install ${PIP_ARGS} -r /tmp/req.txt && rm /tmp/req.txt
# The operator and the contract package it shares with the workers (pure pydantic); the worker
# runtime is not in this image.
COPY api/ /src/api/
COPY operator/ /src/operator/
RUN mkdir -p /src/training_image/trainforge_runtime \
    && python -m pip install ${PIP_ARGS} --no-deps /src \
    && rm -rf /src \
    && python -c "import kopf, trainforge_operator.main, trainforge_api.context" \
    && python -m compileall -q "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null

# A passwd entry for the runtime uid: kopf derives its peering identity from getpass.getuser().
RUN groupadd --system --gid 65532 trainforge \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin trainforge
USER 65532:65532
WORKDIR /tmp
# 8080 /metrics, 8081 /healthz (kopf liveness)
EXPOSE 8080 8081
ENTRYPOINT ["trainforge-operator"]

# MinIO of the e2e cluster (hack/e2e-addons.sh): the server built by hack/build-minio.sh on the
# minimal Debian base.
ARG MINI_BASE
FROM ${MINI_BASE}
COPY minio /usr/local/bin/minio
ENTRYPOINT ["/usr/local/bin/minio"]

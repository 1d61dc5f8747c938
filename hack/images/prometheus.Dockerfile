# Prometheus of the e2e cluster (hack/e2e-addons.sh): Debian's prometheus binary and its console
# files (share/) on the minimal Debian base. kubectl feeds file_sd, because Debian's build has no
# kubernetes_sd_configs (hack/kind/addons.yaml).
ARG MINI_BASE
FROM ${MINI_BASE}
COPY prometheus kubectl /usr/bin/
COPY share /usr/share/prometheus
USER 65534
ENTRYPOINT ["/usr/bin/prometheus"]

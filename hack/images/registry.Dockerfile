# The local image registry of the e2e cluster (hack/e2e-install.sh): the CNCF distribution
# registry built by hack/build-registry.sh, with registry-config.yml, on the minimal Debian base.
ARG MINI_BASE
FROM ${MINI_BASE}
COPY registry /usr/local/bin/registry
COPY registry-config.yml /etc/distribution/config.yml
ENTRYPOINT ["/usr/local/bin/registry", "serve", "/etc/distribution/config.yml"]

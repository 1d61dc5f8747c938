# kube-proxy for the kind node: it needs iptables, nftables and conntrack, so it goes on the
# minimal Debian base (MINI_BASE, hack/build-node-image.sh) instead of scratch.
ARG MINI_BASE
FROM ${MINI_BASE}
COPY kube-proxy /usr/local/bin/

# The offline kind node image: the assembled node rootfs (hack/build-node-image.sh), imported as
# ROOTFS, with what kind's own base image sets to boot systemd in a container.
ARG ROOTFS
FROM ${ROOTFS}
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]

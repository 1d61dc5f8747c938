# The offline Python base of the operator and worker images (hack/build-base-image.sh): a
# debootstrapped Debian rootfs with python3, imported as ROOTFS, plus what python:*-slim sets.
ARG ROOTFS
FROM ${ROOTFS}
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
CMD ["python3"]

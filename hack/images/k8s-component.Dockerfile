# A Kubernetes component image of the kind node (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd): the build context is the one binary (hack/build-node-image.sh).
FROM scratch
ENV PATH=/usr/local/bin:/usr/bin:/bin
COPY . /usr/local/bin/

# CoreDNS for the kind node: kubeadm's Deployment runs the image's entrypoint.
FROM scratch
COPY coredns /coredns
ENTRYPOINT ["/coredns"]

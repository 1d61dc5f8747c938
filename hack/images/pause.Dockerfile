# The pod sandbox image of the kind node (hack/kind/pause/main.go).
FROM scratch
COPY pause /pause
ENTRYPOINT ["/pause"]

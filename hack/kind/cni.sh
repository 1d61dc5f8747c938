#!/usr/bin/env bash
# Pod networking for a kind cluster created with disableDefaultCNI (what kindnetd would do, minus
# masquerade and network policy): on every node write a ptp + host-local CNI config for the node's
# podCIDR, and route every other node's podCIDR via that node's IP on the shared Docker bridge.
# Usage: hack/kind/cni.sh CLUSTER_NAME KUBECONFIG
source "$(dirname "$0")/../lib.sh"
CLUSTER="${1:?cluster name}"; KUBECONFIG_FILE="${2:?kubeconfig}"
KUBECTL="$(tool_dir k8s "$K8S_VERSION")/bin/kubectl"
mapfile -t NODES < <("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
[ ${#NODES[@]} -gt 0 ] || die "no nodes in cluster $CLUSTER"
for line in "${NODES[@]}"; do
  read -r name cidr _ <<<"$line"
  [ -n "$cidr" ] || die "node $name has no spec.podCIDR (kind passes a podSubnet, so the KCM should set it)"
  gw="${cidr%.*}.1"
  docker exec -i "$name" sh -c 'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-trainforge.conflist' <<CONF
{
  "cniVersion": "0.3.1",
  "name": "trainforge",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr", "gateway": "$gw"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
  for other in "${NODES[@]}"; do
    read -r oname ocidr oip <<<"$other"
    [ "$oname" = "$name" ] && continue
    docker exec "$name" ip route replace "$ocidr" via "$oip"
  done
  log "$name: pods $cidr, routes to $(( ${#NODES[@]} - 1 )) peers"
done

# shellcheck shell=bash
# ovn-sandbox/pods.sh: this node's pods as network namespaces, wired the way the two CNIs wire
# them, plus the CNI cache files kubelet leaves behind (so pod discovery runs its real path).
#
#   <prefix>host-node1  (stands in for node1's host network; keeps the root namespace clean)
#     eth0   172.18.0.2/24, default via 172.18.0.1 (so proxy ARP has somewhere to route)
#     cali<id> --veth-- eth0 of a pod   Calico: pod 192.168.1.X/32, default via 169.254.1.1,
#                                        host side answers ARP for anything (proxy_arp), as
#                                        Calico does; 192.168.1.X/32 routed to cali<id>
#     br-ovn 10.244.1.1/24
#       ovn<id> --veth-- eth1 of a pod   OVN: pod 10.244.1.X/24 (MAC 0a:58:..), 10.244.0.0/16 via
#                                        10.244.1.1; the bridge answers as the gateway
#                                        (rtos-node1 in the logical topology)
#
# Only namespaces named with $OVNKR_NETNS_PREFIX are created, each recorded in $NETNS_LIST
# before anything is put into it, so stop removes exactly those.

ovnkr_add_netns() {
  local ns="$1"
  [ -e "$NETNS_DIR/$ns" ] && ovnkr_die "network namespace $ns already exists (another sandbox with the same OVNKR_NETNS_PREFIX?)"
  ip netns add "$ns"
  echo "$ns" >>"$NETNS_LIST"
  ip -n "$ns" link set lo up
}

ovnkr_build_host() {
  local host n ip
  host="$(ovnkr_host_netns "$OVNKR_NODE")"
  n="$(ovnkr_node_index "$OVNKR_NODE")"
  ip="172.18.0.$((n + 1))"
  ovnkr_add_netns "$host"
  ip netns exec "$host" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$host" link add eth0 type veth peer name uplink0
  ip -n "$host" link set uplink0 up
  ip -n "$host" addr add "$ip/24" dev eth0
  ip -n "$host" link set eth0 up
  ip -n "$host" route add default via 172.18.0.1 dev eth0
  ip -n "$host" link add br-ovn type bridge
  ip -n "$host" addr add "10.244.$n.1/24" dev br-ovn
  ip -n "$host" link set br-ovn address "$(ovnkr_mac "10.244.$n.1")" up
}

# Wires one pod (already split into P_* by ovnkr_pod_fields).
ovnkr_build_pod_netns() {
  local host ns id cali ovn n
  host="$(ovnkr_host_netns "$OVNKR_NODE")"
  ns="$(ovnkr_netns "$P_NAME")"
  n="$(ovnkr_node_index "$P_NODE")"
  id="$(ovnkr_hex "$P_NS/$P_NAME" 11)"
  cali="cali$id"
  ovn="ovn$id"
  ovnkr_add_netns "$ns"

  # eth0: Calico.
  ip -n "$host" link add "$cali" type veth peer name eth0 netns "$ns"
  ip -n "$host" link set "$cali" address ee:ee:ee:ee:ee:ee up
  ip netns exec "$host" sysctl -qw "net.ipv4.conf.$cali.proxy_arp=1" \
    "net.ipv4.neigh.$cali.proxy_delay=0"
  ip -n "$host" route add "$P_CALICO_IP/32" dev "$cali"
  ip -n "$ns" addr add "$P_CALICO_IP/32" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add 169.254.1.1 dev eth0 scope link
  ip -n "$ns" route add default via 169.254.1.1 dev eth0

  # eth1: OVN-Kubernetes, when the pod has an OVN interface.
  if [ "$P_MODE" = dual ]; then
    ip -n "$host" link add "$ovn" type veth peer name eth1 netns "$ns"
    ip -n "$host" link set "$ovn" master br-ovn up
    ip -n "$ns" link set eth1 address "$(ovnkr_mac "$P_OVN_IP")"
    ip -n "$ns" addr add "$P_OVN_IP/24" dev eth1
    ip -n "$ns" link set eth1 up
    ip -n "$ns" route add 10.244.0.0/16 via "10.244.$n.1" dev eth1
  fi
}

# kubelet's CNI cache: every non-hostNetwork pod gets a loopback result (`cni-loopback-<id>-lo`,
# the format in the design document: cniArgs with K8S_POD_UID, result.interfaces[0].sandbox =
# the netns path), and the network plugin's own result beside it (here Multus, on eth0).
ovnkr_write_cni_cache() {
  local ns cid uid sandbox annotations config
  ns="$(ovnkr_netns "$P_NAME")"
  cid="$(ovnkr_container_id "$P_NS/$P_NAME")"
  uid="$(ovnkr_uid "$P_NS/$P_NAME")"
  sandbox="$NETNS_DIR/$ns"
  annotations="$(ovnkr_pod_annotations_json)"
  config="$(printf '{\n"cniVersion": "0.3.1",\n"name": "cni-loopback",\n"plugins": [{\n  "type": "loopback"\n}]\n}' | base64 -w0)"
  jq -n --arg cid "$cid" --arg uid "$uid" --arg ns "$P_NS" --arg name "$P_NAME" \
    --arg sandbox "$sandbox" --arg config "$config" --argjson ann "$annotations" '{
    kind: "cniCacheV1", containerId: $cid, config: $config, ifName: "lo",
    networkName: "cni-loopback",
    cniArgs: [["K8S_POD_NAMESPACE", $ns], ["K8S_POD_NAME", $name],
              ["K8S_POD_INFRA_CONTAINER_ID", $cid], ["K8S_POD_UID", $uid],
              ["IgnoreUnknown", "1"]],
    capabilityArgs: {
      dns: {Servers: ["10.96.0.10"],
            Searches: [($ns + ".svc.cluster.local"), "svc.cluster.local", "cluster.local"],
            Options: ["ndots:5"]},
      "io.kubernetes.cri.pod-annotations": ($ann + {
        "kubernetes.io/config.seen": "2026-11-26T09:00:00.000000000+00:00",
        "kubernetes.io/config.source": "api"})
    },
    result: {cniVersion: "0.3.1", dns: {},
             interfaces: [{mac: "00:00:00:00:00:00", name: "lo", sandbox: $sandbox}],
             ips: [{address: "127.0.0.1/8", interface: 0, version: ""},
                   {address: "::1/128", interface: 0, version: ""}]}
  }' >"$CNI_RESULTS/cni-loopback-$cid-lo"
  jq -n --arg cid "$cid" --arg uid "$uid" --arg ns "$P_NS" --arg name "$P_NAME" \
    --arg sandbox "$sandbox" --arg ip "$P_CALICO_IP" '{
    kind: "cniCacheV1", containerId: $cid, ifName: "eth0", networkName: "multus-cni-network",
    cniArgs: [["K8S_POD_NAMESPACE", $ns], ["K8S_POD_NAME", $name],
              ["K8S_POD_INFRA_CONTAINER_ID", $cid], ["K8S_POD_UID", $uid],
              ["IgnoreUnknown", "1"]],
    result: {cniVersion: "0.3.1", dns: {},
             interfaces: [{name: "eth0", sandbox: $sandbox}],
             ips: [{address: ($ip + "/32"), interface: 0, version: "4"}]}
  }' >"$CNI_RESULTS/multus-cni-network-$cid-eth0"
}

ovnkr_build_pods() {
  local line count=0
  ovnkr_log "creating $OVNKR_NODE's pods as network namespaces (prefix $OVNKR_NETNS_PREFIX)"
  mkdir -p "$CNI_RESULTS"
  ovnkr_build_host
  for line in "${OVNKR_PODS[@]}"; do
    ovnkr_pod_fields "$line"
    [ "$P_NODE" = "$OVNKR_NODE" ] || continue
    [ "$P_MODE" = host ] && continue
    ovnkr_build_pod_netns
    ovnkr_write_cni_cache
    count=$((count + 1))
  done
  ovnkr_log "$count pod namespaces, CNI cache in $CNI_RESULTS"
}

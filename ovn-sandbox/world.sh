# shellcheck shell=bash
# ovn-sandbox/world.sh: the sandbox's cluster as Kubernetes objects (world.yaml), in the shape
# `kubectl get -o yaml` prints them, generated from the same tables as the NB rows and the
# namespaces so uids, IPs and MACs agree everywhere. `./ovn-sandbox/sandbox world` prints it;
# selftest fails when the committed world.yaml is stale.

# kind|namespace|name|selector labels|owner kind|owner name
OVNKR_WORKLOADS=(
  "Deployment|default|nginx|app=nginx||"
  "ReplicaSet|default|nginx-7c5ddbdf54|app=nginx,pod-template-hash=7c5ddbdf54|Deployment|nginx"
  "Deployment|kube-system|coredns|k8s-app=kube-dns||"
  "ReplicaSet|kube-system|coredns-5d78c9869d|k8s-app=kube-dns,pod-template-hash=5d78c9869d|Deployment|coredns"
  "StatefulSet|lowlat|trader|app=trader||"
  "DaemonSet|kube-system|kube-proxy|k8s-app=kube-proxy||"
)

OVNKR_CREATED="2026-11-26T09:00:00Z"

ovnkr_image() {
  case "$1" in
  nginx*) echo "nginx:1.25" ;;
  coredns*) echo "registry.k8s.io/coredns/coredns:v1.11.1" ;;
  trader*) echo "registry.example.com/lowlat/trader:2.4" ;;
  kube-proxy*) echo "registry.k8s.io/kube-proxy:v1.33.0" ;;
  *) echo "busybox:1.36" ;;
  esac
}

# `k8s.ovn.org/pod-networks` as ovn-kubernetes writes it (the design document's format).
ovnkr_pod_networks_json() {
  local n
  n="$(ovnkr_node_index "$P_NODE")"
  jq -cn --arg ip "$P_OVN_IP/24" --arg mac "$(ovnkr_mac "$P_OVN_IP")" --arg gw "10.244.$n.1" \
    '{default: {ip_addresses: [$ip], mac_address: $mac, gateway_ips: [$gw],
                ip_address: $ip, gateway_ip: $gw}}'
}

# `k8s.v1.cni.cncf.io/network-status` as Multus writes it: Calico on eth0 (default), OVN on eth1.
ovnkr_network_status_json() {
  local n
  n="$(ovnkr_node_index "$P_NODE")"
  jq -cn --arg cip "$P_CALICO_IP" --arg oip "$P_OVN_IP" --arg mac "$(ovnkr_mac "${P_OVN_IP:-0.0.0.0}")" \
    --arg gw "10.244.$n.1" --arg mode "$P_MODE" '
    [{name: "k8s-pod-network", interface: "eth0", ips: [$cip], default: true, dns: {}}]
    + (if $mode == "dual" then
        [{name: "default/ovn-kubernetes", interface: "eth1", ips: [$oip], mac: $mac,
          dns: {}, gateway: [$gw]}]
       else [] end)'
}

# All CNI annotations of the current pod (P_*) as one JSON object (empty for hostNetwork).
ovnkr_pod_annotations_json() {
  case "$P_MODE" in
  host) echo '{}' ;;
  calico)
    jq -cn --arg cip "$P_CALICO_IP/32" --arg st "$(ovnkr_network_status_json)" \
      '{"cni.projectcalico.org/podIP": $cip, "k8s.v1.cni.cncf.io/network-status": $st}'
    ;;
  dual)
    jq -cn --arg cip "$P_CALICO_IP/32" --arg st "$(ovnkr_network_status_json)" \
      --arg pn "$(ovnkr_pod_networks_json)" \
      '{"cni.projectcalico.org/podIP": $cip, "k8s.ovn.org/pod-networks": $pn,
        "k8s.v1.cni.cncf.io/network-status": $st}'
    ;;
  esac
}

# Prints `key: value` lines for a comma-separated label list, indented by $2 spaces.
ovnkr_yaml_labels() {
  local kv pad
  pad="$(printf '%*s' "$2" '')"
  IFS=',' read -ra kvs <<<"$1"
  for kv in "${kvs[@]}"; do
    [ -n "$kv" ] && printf '%s%s: %s\n' "$pad" "${kv%%=*}" "${kv#*=}"
  done
}

# A YAML single-quoted scalar (JSON never needs escaping beyond doubling single quotes).
ovnkr_yaml_quote() { printf "'%s'" "${1//\'/\'\'}"; }

ovnkr_world_namespace() {
  local name labels
  IFS='|' read -r name labels <<<"$1"
  cat <<EOF
---
apiVersion: v1
kind: Namespace
metadata:
  name: $name
  uid: $(ovnkr_uid "Namespace/$name")
  creationTimestamp: "$OVNKR_CREATED"
  labels:
$(ovnkr_yaml_labels "$labels" 4)
spec:
  finalizers:
  - kubernetes
status:
  phase: Active
EOF
}

ovnkr_world_owner_ref() {
  local kind="$1" ns="$2" name="$3"
  cat <<EOF
  ownerReferences:
  - apiVersion: apps/v1
    kind: $kind
    name: $name
    uid: $(ovnkr_uid "$kind/$ns/$name")
    controller: true
    blockOwnerDeletion: true
EOF
}

ovnkr_world_pod() {
  local ann key host_ip n
  ovnkr_pod_fields "$1"
  n="$(ovnkr_node_index "$P_NODE")"
  host_ip="172.18.0.$((n + 1))"
  ann="$(ovnkr_pod_annotations_json)"
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Pod"
  echo "metadata:"
  echo "  name: $P_NAME"
  echo "  namespace: $P_NS"
  echo "  uid: $(ovnkr_uid "$P_NS/$P_NAME")"
  echo "  creationTimestamp: \"$OVNKR_CREATED\""
  echo "  labels:"
  ovnkr_yaml_labels "$P_LABELS" 4
  if [ "$ann" != '{}' ]; then
    echo "  annotations:"
    while IFS= read -r key; do
      printf '    %s: %s\n' "$key" "$(ovnkr_yaml_quote "$(jq -r --arg k "$key" '.[$k]' <<<"$ann")")"
    done < <(jq -r 'keys[]' <<<"$ann")
  fi
  [ -n "$P_OWNER_KIND" ] && ovnkr_world_owner_ref "$P_OWNER_KIND" "$P_NS" "$P_OWNER_NAME"
  echo "spec:"
  echo "  nodeName: $P_NODE"
  [ "$P_MODE" = host ] && echo "  hostNetwork: true"
  echo "  containers:"
  echo "  - name: main"
  echo "    image: $(ovnkr_image "$P_NAME")"
  echo "status:"
  echo "  phase: Running"
  echo "  hostIP: $host_ip"
  if [ "$P_MODE" = host ]; then
    echo "  podIP: $host_ip"
    echo "  podIPs:"
    echo "  - ip: $host_ip"
  else
    echo "  podIP: $P_CALICO_IP"
    echo "  podIPs:"
    echo "  - ip: $P_CALICO_IP"
  fi
}

ovnkr_world_service() {
  local ns name cip pp tport sel
  IFS='|' read -r ns name cip pp tport sel <<<"$1"
  cat <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: $name
  namespace: $ns
  uid: $(ovnkr_uid "Service/$ns/$name")
  creationTimestamp: "$OVNKR_CREATED"
spec:
  type: ClusterIP
  clusterIP: $cip
  clusterIPs:
  - $cip
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - name: p${pp#*/}
    protocol: ${pp%%/*}
    port: ${pp#*/}
    targetPort: $tport
  selector:
$(ovnkr_yaml_labels "$sel" 4)
status:
  loadBalancer: {}
EOF
}

ovnkr_world_workload() {
  local kind ns name sel okind oname replicas=0 line
  IFS='|' read -r kind ns name sel okind oname <<<"$1"
  for line in "${OVNKR_PODS[@]}"; do
    ovnkr_pod_fields "$line"
    [ "$P_NS" = "$ns" ] && [[ ",$P_LABELS," == *",${sel%%,*},"* ]] && replicas=$((replicas + 1))
  done
  echo "---"
  echo "apiVersion: apps/v1"
  echo "kind: $kind"
  echo "metadata:"
  echo "  name: $name"
  echo "  namespace: $ns"
  echo "  uid: $(ovnkr_uid "$kind/$ns/$name")"
  echo "  creationTimestamp: \"$OVNKR_CREATED\""
  echo "  labels:"
  ovnkr_yaml_labels "${sel%%,*}" 4
  [ -n "$okind" ] && ovnkr_world_owner_ref "$okind" "$ns" "$oname"
  echo "spec:"
  [ "$kind" != DaemonSet ] && echo "  replicas: $replicas"
  [ "$kind" = StatefulSet ] && echo "  serviceName: $name"
  echo "  selector:"
  echo "    matchLabels:"
  ovnkr_yaml_labels "$sel" 6
  echo "  template:"
  echo "    metadata:"
  echo "      labels:"
  ovnkr_yaml_labels "$sel" 8
  echo "    spec:"
  [ "$kind" = DaemonSet ] && echo "      hostNetwork: true"
  echo "      containers:"
  echo "      - name: main"
  echo "        image: $(ovnkr_image "$name")"
  echo "status:"
  if [ "$kind" = DaemonSet ]; then
    echo "  currentNumberScheduled: $replicas"
    echo "  desiredNumberScheduled: $replicas"
    echo "  numberMisscheduled: 0"
    echo "  numberReady: $replicas"
  else
    echo "  replicas: $replicas"
    echo "  readyReplicas: $replicas"
  fi
}

ovnkr_world() {
  local line
  echo "# The sandbox cluster as Kubernetes objects (kubectl get -o yaml shape)."
  echo "# Generated by \`./ovn-sandbox/sandbox world\` from ovn-sandbox/lib.sh; do not edit by hand."
  echo "# Pod uids match the CNI cache files, OVN IPs/MACs match the logical switch ports."
  for line in "${OVNKR_NAMESPACES[@]}"; do ovnkr_world_namespace "$line"; done
  for line in "${OVNKR_WORKLOADS[@]}"; do ovnkr_world_workload "$line"; done
  for line in "${OVNKR_PODS[@]}"; do ovnkr_world_pod "$line"; done
  for line in "${OVNKR_SERVICES[@]}"; do ovnkr_world_service "$line"; done
}

# shellcheck shell=bash
# ovn-sandbox/topology.sh: the ovn-kubernetes-shaped logical topology, built with ovn-nbctl the
# way ovn-kubernetes lays it out (shared gateway mode, one gateway router per node):
#
#   pods --- <node> switch (10.244.N.0/24) --stor-/rtos-<node>--+
#                                                             ovn_cluster_router
#   join switch (100.64.0.0/16) --jtor-/rtoj-ovn_cluster_router-+  (100.64.0.1)
#        |
#        +-- rtoj-GR_<node> (100.64.0.N+1) -- GR_<node> -- rtoe-GR_<node> (172.18.0.N+1)
#                                                                |
#                                                ext_<node> switch + localnet port
#
# Every row here belongs to "ovn-kubernetes": none carries ovnkube-route's owner keys, so
# tests can check they stay byte-for-byte untouched.
#
# Sourced by lib.sh; uses nbctl and the world tables from there.

# ovn-kubernetes' own ownership keys (what a real cluster's rows look like).
OVNK_OWNER='external_ids:"k8s.ovn.org/owner-controller"=default-network-controller'

ovnkr_build_routers() {
  local node n cidr
  nbctl lr-add ovn_cluster_router -- \
    set Logical_Router ovn_cluster_router external_ids:k8s-cluster-router=yes \
    external_ids:k8s-ovn-topo-version=11 options:mcast_relay=false
  nbctl ls-add join -- \
    lrp-add ovn_cluster_router rtoj-ovn_cluster_router 0a:58:64:40:00:01 100.64.0.1/16 -- \
    lsp-add join jtor-ovn_cluster_router -- \
    lsp-set-type jtor-ovn_cluster_router router -- \
    lsp-set-addresses jtor-ovn_cluster_router router -- \
    lsp-set-options jtor-ovn_cluster_router router-port=rtoj-ovn_cluster_router

  for node in "${OVNKR_NODES[@]}"; do
    n="$(ovnkr_node_index "$node")"
    cidr="10.244.$n.0/24"
    # Node switch and its router port pair (rtos-/stor-), plus the management port k8s-<node>.
    nbctl ls-add "$node" -- \
      set Logical_Switch "$node" other_config:subnet="$cidr" -- \
      lrp-add ovn_cluster_router "rtos-$node" "$(ovnkr_mac "10.244.$n.1")" "10.244.$n.1/24" -- \
      lsp-add "$node" "stor-$node" -- \
      lsp-set-type "stor-$node" router -- \
      lsp-set-addresses "stor-$node" router -- \
      lsp-set-options "stor-$node" router-port="rtos-$node" -- \
      lsp-add "$node" "k8s-$node" -- \
      lsp-set-addresses "k8s-$node" "$(ovnkr_mac "10.244.$n.2") 10.244.$n.2"

    # Gateway router: join side 100.64.0.(n+1), external side 172.18.0.(n+1).
    local join_ip="100.64.0.$((n + 1))" ext_ip="172.18.0.$((n + 1))"
    nbctl lr-add "GR_$node" -- \
      set Logical_Router "GR_$node" options:chassis="chassis-$node" \
      options:always_learn_from_arp_request=false options:dynamic_neigh_routers=true \
      external_ids:physical_ip="$ext_ip" external_ids:physical_ips="$ext_ip" -- \
      lrp-add "GR_$node" "rtoj-GR_$node" "$(ovnkr_mac "$join_ip")" "$join_ip/16" -- \
      lsp-add join "jtor-GR_$node" -- \
      lsp-set-type "jtor-GR_$node" router -- \
      lsp-set-addresses "jtor-GR_$node" router -- \
      lsp-set-options "jtor-GR_$node" router-port="rtoj-GR_$node" -- \
      lrp-add "GR_$node" "rtoe-GR_$node" "02:42:ac:12:00:0$((n + 1))" "$ext_ip/24" -- \
      ls-add "ext_$node" -- \
      lsp-add "ext_$node" "etor-GR_$node" -- \
      lsp-set-type "etor-GR_$node" router -- \
      lsp-set-addresses "etor-GR_$node" router -- \
      lsp-set-options "etor-GR_$node" router-port="rtoe-GR_$node" -- \
      lsp-add "ext_$node" "breth0_$node" -- \
      lsp-set-type "breth0_$node" localnet -- \
      lsp-set-addresses "breth0_$node" unknown -- \
      lsp-set-options "breth0_$node" network_name=physnet
    # GR: default route to the node's upstream gateway, pod networks back via the cluster
    # router, SNAT of pod traffic to the node IP.
    nbctl lr-route-add "GR_$node" 0.0.0.0/0 172.18.0.1 "rtoe-GR_$node" -- \
      lr-route-add "GR_$node" 10.244.0.0/16 100.64.0.1 -- \
      lr-nat-add "GR_$node" snat "$ext_ip" 10.244.0.0/16

    # ovn_cluster_router: the GR's join IP as a host route, and the node's pod subnet leaves
    # through that node's GR (src-ip routes, as ovn-kubernetes installs them).
    nbctl lr-route-add ovn_cluster_router "$join_ip" "$join_ip" -- \
      --policy=src-ip lr-route-add ovn_cluster_router "$cidr" "$join_ip"
  done
}

# Policies ovn-kubernetes keeps on ovn_cluster_router (priorities from its source: 102
# no-reroute for pod-to-pod / pod-to-join / pod-to-node, 501 for interconnect/hybrid traffic,
# 1004 node management port reroute) and an EgressIP-style reroute at 100.
ovnkr_build_policies() {
  local node n
  ovnkr_policy 102 'ip4.src == 10.244.0.0/16 && ip4.dst == 10.244.0.0/16' allow '' \
    'external_ids:"k8s.ovn.org/owner-type"=DefaultNetwork external_ids:"k8s.ovn.org/name"=default-no-reroute'
  ovnkr_policy 102 'ip4.src == 10.244.0.0/16 && ip4.dst == 100.64.0.0/16' allow '' \
    'external_ids:"k8s.ovn.org/owner-type"=DefaultNetwork external_ids:"k8s.ovn.org/name"=default-no-reroute'
  ovnkr_policy 102 'ip4.src == 10.244.0.0/16 && ip4.dst == 172.18.0.0/24' allow '' \
    'external_ids:"k8s.ovn.org/owner-type"=DefaultNetwork external_ids:"k8s.ovn.org/name"=default-no-reroute-node-ips'
  ovnkr_policy 501 'ip4.src == 10.244.0.0/16 && ip4.dst == 10.245.0.0/16' allow '' \
    'external_ids:"k8s.ovn.org/owner-type"=DefaultNetwork external_ids:"k8s.ovn.org/name"=hybrid-overlay'
  for node in "${OVNKR_NODES[@]}"; do
    n="$(ovnkr_node_index "$node")"
    ovnkr_policy 1004 "inport == \"rtos-$node\" && ip4.dst == 172.18.0.$((n + 1)) /* $node */" \
      reroute "10.244.$n.2" \
      "external_ids:\"k8s.ovn.org/owner-type\"=DefaultNetwork external_ids:\"k8s.ovn.org/name\"=$node-mgmt"
  done
  # EgressIP of namespace lowlat, pinned to node2's gateway for trader-1 only.
  ovnkr_policy 100 'ip4.src == 10.244.2.5' reroute 100.64.0.3 \
    'external_ids:"k8s.ovn.org/owner-type"=EgressIP external_ids:"k8s.ovn.org/name"=lowlat-egress'
}

# ovnkr_policy PRIORITY MATCH ACTION NEXTHOP EXTRA_COLUMNS
ovnkr_policy() {
  local prio="$1" match="$2" action="$3" nh="$4" extra="$5" cols
  # ovsdb string syntax: the value is double-quoted, inner quotes escaped.
  cols=(priority="$prio" match="\"${match//\"/\\\"}\"" action="$action" "$OVNK_OWNER")
  [ -n "$nh" ] && cols+=(nexthops="\"$nh\"")
  # shellcheck disable=SC2206
  cols+=($extra)
  nbctl --id=@p create Logical_Router_Policy "${cols[@]}" -- \
    add Logical_Router ovn_cluster_router policies @p >/dev/null
}

# Namespace address sets, a management-port ACL on each node switch, and a NetworkPolicy-like
# default-deny port group for namespace lowlat.
ovnkr_build_acls() {
  local nsline ns node n ips line lowlat_ports=() h
  for nsline in "${OVNKR_NAMESPACES[@]}"; do
    ns="${nsline%%|*}"
    ips=()
    for line in "${OVNKR_PODS[@]}"; do
      ovnkr_pod_fields "$line"
      [ "$P_NS" = "$ns" ] && [ -n "$P_OVN_IP" ] && ips+=("\"$P_OVN_IP\"")
    done
    h="a$(printf '%s' "as/$ns" | cksum | cut -d' ' -f1)"
    nbctl create Address_Set name="$h" \
      addresses="[$(IFS=,; echo "${ips[*]}")]" \
      "$OVNK_OWNER" external_ids:"k8s.ovn.org/owner-type"=Namespace \
      external_ids:"k8s.ovn.org/name"="$ns" external_ids:ip-family=v4 >/dev/null
  done
  for node in "${OVNKR_NODES[@]}"; do
    n="$(ovnkr_node_index "$node")"
    nbctl --id=@a create ACL direction=to-lport priority=1001 \
      match="\"ip4.src==10.244.$n.2\"" action=allow-related \
      "$OVNK_OWNER" external_ids:"k8s.ovn.org/owner-type"=NetpolNode \
      external_ids:"k8s.ovn.org/name"="$node" -- \
      add Logical_Switch "$node" acls @a >/dev/null
  done
  for line in "${OVNKR_PODS[@]}"; do
    ovnkr_pod_fields "$line"
    [ "$P_NS" = lowlat ] && [ -n "$P_OVN_IP" ] && lowlat_ports+=("${P_NS}_${P_NAME}")
  done
  nbctl pg-add lowlat_ingressDefaultDeny "${lowlat_ports[@]}" -- \
    set Port_Group lowlat_ingressDefaultDeny "$OVNK_OWNER" \
    external_ids:"k8s.ovn.org/owner-type"=NetworkPolicy external_ids:"k8s.ovn.org/name"=lowlat
  nbctl --type=port-group acl-add lowlat_ingressDefaultDeny to-lport 1001 \
    'outport == @lowlat_ingressDefaultDeny && arp' allow -- \
    --type=port-group acl-add lowlat_ingressDefaultDeny to-lport 1000 \
    'outport == @lowlat_ingressDefaultDeny && ip' drop
}

# One Load_Balancer per Service (ovn-kubernetes' naming), on every node switch and GR.
ovnkr_build_load_balancers() {
  local line ns name cip pp tport sel proto port backends lb node pline
  for line in "${OVNKR_SERVICES[@]}"; do
    IFS='|' read -r ns name cip pp tport sel <<<"$line"
    proto="${pp%%/*}"
    port="${pp#*/}"
    backends=()
    for pline in "${OVNKR_PODS[@]}"; do
      ovnkr_pod_fields "$pline"
      [ "$P_NS" = "$ns" ] && [ -n "$P_OVN_IP" ] && [[ ",$P_LABELS," == *",$sel,"* ]] &&
        backends+=("$P_OVN_IP:$tport")
    done
    lb="Service_${ns}/${name}_${proto}_cluster"
    nbctl create Load_Balancer name="\"$lb\"" protocol="${proto,,}" \
      vips:"\"$cip:$port\""="\"$(IFS=,; echo "${backends[*]}")\"" \
      external_ids:"k8s.ovn.org/kind"=Service external_ids:"k8s.ovn.org/owner"="$ns/$name" \
      options:event=false options:reject=true options:skip_snat=false >/dev/null
    for node in "${OVNKR_NODES[@]}"; do
      nbctl ls-lb-add "$node" "$lb" -- lr-lb-add "GR_$node" "$lb"
    done
  done
}

# One logical switch port per pod with an OVN interface, named <namespace>_<pod>.
ovnkr_build_pod_ports() {
  local line addr
  for line in "${OVNKR_PODS[@]}"; do
    ovnkr_pod_fields "$line"
    [ -n "$P_OVN_IP" ] || continue
    addr="$(ovnkr_mac "$P_OVN_IP") $P_OVN_IP"
    nbctl lsp-add "$P_NODE" "${P_NS}_${P_NAME}" -- \
      lsp-set-addresses "${P_NS}_${P_NAME}" "$addr" -- \
      lsp-set-port-security "${P_NS}_${P_NAME}" "$addr" -- \
      set Logical_Switch_Port "${P_NS}_${P_NAME}" external_ids:namespace="$P_NS" \
      external_ids:pod=true options:requested-chassis="chassis-$P_NODE" \
      options:iface-id-ver="$(ovnkr_uid "$P_NS/$P_NAME")"
  done
}

ovnkr_build_topology() {
  ovnkr_log "building the ovn-kubernetes topology"
  ovnkr_build_routers
  ovnkr_build_pod_ports
  ovnkr_build_policies
  ovnkr_build_acls
  ovnkr_build_load_balancers
}

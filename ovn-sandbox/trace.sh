# shellcheck shell=bash
# ovn-sandbox/trace.sh: ovn-trace a pod's packet through the logical topology and say in one
# line what OVN does with it (rerouted by a policy, routed normally, dropped by an ACL).
#
# ovn-trace reads the Southbound DB, so NB changes must reach it first (`nbctl --wait=sb sync`,
# done here). Traces use `--ct=new`: a first packet, so stateful ACL drops show as `drop;`.
# ECMP reroutes pick one next hop at random in a trace; every select id is traced so the
# summary names all next hops and the gateway routers they lead to.

# ovnkr_trace POD DST [PROTO/PORT] [extra ovn-trace options...]: the raw trace.
ovnkr_trace() {
  local pod="$1" dst="$2" pp="${3:-tcp/80}" n mac gwmac proto port
  shift 3 2>/dev/null || shift $#
  ovnkr_pod_by_name "$pod" || ovnkr_die "unknown pod $pod"
  [ -n "$P_OVN_IP" ] || ovnkr_die "pod $pod has no OVN interface"
  n="$(ovnkr_node_index "$P_NODE")"
  mac="$(ovnkr_mac "$P_OVN_IP")"
  gwmac="$(ovnkr_mac "10.244.$n.1")"
  proto="${pp%%/*}"
  port="${pp#*/}"
  ovn-trace --db="$SB_DB" --ct=new "$@" "$P_NODE" \
    "inport == \"${P_NS}_${P_NAME}\" && eth.src == $mac && eth.dst == $gwmac && ip4.src == $P_OVN_IP && ip4.dst == $dst && ip.ttl == 64 && $proto && $proto.dst == $port"
}

# Reads a raw trace on stdin and prints key=value facts about it:
#   policy_prio / policy_match / policy_action (reroute|allow|drop|none) / policy_select (ids)
#   policy_nexthop (single-hop reroute or the hop chosen by ECMP), route_match / route_nexthop
#   (lr_in_ip_routing on ovn_cluster_router), lb_backends (a load balancer's ct_lb backends
#   for the first matching VIP), lb_reject (1: a VIP without backends rejected it), acl_drop (match of a dropping ACL), gr (first
#   gateway router reached), out (last port the packet is output to).
ovnkr_trace_facts() {
  awk '
    function flush_stage() { stage = ""; }
    /^ *(ingress|egress)\(dp="/ {
      dp = $0; sub(/^ *(ingress|egress)\(dp="/, "", dp); sub(/".*/, "", dp)
      if (dp ~ /^GR_/ && gr == "") gr = dp
      flush_stage(); next
    }
    /^ *[0-9]+\. [a-z_]+ \(/ {
      stage = $2; line = $0
      sub(/^ *[0-9]+\. [a-z_]+ \([^)]*\): /, "", line)
      prio = line; sub(/.*, priority /, "", prio); sub(/, uuid.*/, "", prio)
      match_txt = line; sub(/, priority [0-9]+, uuid [0-9a-f]+$/, "", match_txt)
      if (dp == "ovn_cluster_router" && stage == "lr_in_policy") {
        policy_prio = prio; policy_match = match_txt; policy_action = (prio == 0 ? "none" : "allow")
      }
      if (dp == "ovn_cluster_router" && stage == "lr_in_ip_routing") route_match = match_txt
      if (stage == "ls_in_acl" || stage == "ls_out_acl") acl_match = match_txt
      next
    }
    /\/\* output to "/ { o = $0; sub(/.*output to "/, "", o); sub(/".*/, "", o); out = o; next }
    {
      a = $0; gsub(/^ +| +$/, "", a)
      if (dp == "ovn_cluster_router" && stage == "lr_in_policy") {
        if (a ~ /select\(/) { policy_action = "reroute"; s = a; sub(/.*select\(/, "", s); sub(/\).*/, "", s)
          gsub(/=[0-9]+/, "", s); gsub(/ /, "", s); policy_select = s }
        else if (a ~ /^reg0 = / && policy_prio + 0 > 0) { policy_action = "reroute"; h = a; sub(/^reg0 = /, "", h); sub(/;.*/, "", h); policy_nexthop = h }
        else if (a == "drop;" && policy_prio + 0 > 0) policy_action = "drop"
      }
      if (dp == "ovn_cluster_router" && stage == "lr_in_policy_ecmp" && a ~ /^reg0 = /) { h = a; sub(/^reg0 = /, "", h); sub(/;.*/, "", h); policy_nexthop = h }
      if (dp == "ovn_cluster_router" && stage == "lr_in_ip_routing" && a ~ /^reg0 = /) { h = a; sub(/^reg0 = /, "", h); sub(/;.*/, "", h); route_nexthop = h }
      if (a ~ /^ct_lb(_mark)?\(backends=/ && lb == "") { b = a; sub(/^ct_lb(_mark)?\(backends=/, "", b); sub(/\).*/, "", b); lb = b }
      if (stage == "ls_in_lb" && a ~ /^reject/) lb_reject = 1
      if ((stage == "ls_in_acl" || stage == "ls_out_acl") && (a == "drop;" || a ~ /^reject/ || a ~ /ct_mark.blocked = 1/)) acl_drop = acl_match
    }
    END {
      printf "policy_prio=%s\npolicy_match=%s\npolicy_action=%s\npolicy_select=%s\npolicy_nexthop=%s\n", policy_prio, policy_match, policy_action, policy_select, policy_nexthop
      printf "route_match=%s\nroute_nexthop=%s\nacl_drop=%s\ngr=%s\nout=%s\nlb_backends=%s\nlb_reject=%s\n", route_match, route_nexthop, acl_drop, gr, out, lb, lb_reject
    }'
}

# ovnkr_fact KEY FACTS: one value from ovnkr_trace_facts output.
ovnkr_fact() { sed -n "s/^$1=//p" <<<"$2" | head -1; }

# lr_in_ip_routing sets reg0 to the next hop, or to ip4.dst itself for a connected network.
ovnkr_route_words() {
  if [ "$1" = ip4.dst ]; then echo "to a directly connected network"; else echo "to $1"; fi
}

# ovnkr_trace_summary POD DST [PROTO/PORT] [--verbose]
# Prints one line and sets TRACE_VERDICT to one of:
#   "rerouted HOP[/HOP...]"  a policy above 0 rerouted the packet (all ECMP next hops listed)
#   "routed HOP"             no reroute policy: normal routing to HOP
#   "balanced BACKENDS"      a Service load balancer DNATed it (backends as ovn-northd lists them)
#   "rejected"               a Service load balancer without endpoints answered with a reset
#   "allowed PRIO"           an allow policy (e.g. ovn-kubernetes' 102 no-reroute) matched
#   "dropped"                an ACL (or a drop policy) dropped it
ovnkr_trace_summary() {
  local pod="$1" dst="$2" pp="tcp/80" verbose=0 raw facts action hops=() grs=() id f2 line
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
    --verbose) verbose=1 ;;
    */*) pp="$1" ;;
    *) ovnkr_die "trace: unexpected argument $1" ;;
    esac
    shift
  done
  nbctl --wait=sb sync
  raw="$(ovnkr_trace "$pod" "$dst" "$pp")"
  [ "$verbose" = 1 ] && printf '%s\n' "$raw"
  facts="$(ovnkr_trace_facts <<<"$raw")"
  action="$(ovnkr_fact policy_action "$facts")"
  line="$pod -> $dst $pp:"
  if [ -n "$(ovnkr_fact acl_drop "$facts")" ] || [ "$action" = drop ]; then
    TRACE_VERDICT="dropped"
    if [ "$action" = drop ]; then
      line+=" dropped by policy $(ovnkr_fact policy_prio "$facts") ($(ovnkr_fact policy_match "$facts"))"
    else
      # northd wraps the ACL's own match as `reg0[N] == 1 && (MATCH)`: show the user's part.
      line+=" dropped by ACL ($(ovnkr_fact acl_drop "$facts" | sed -E 's/^reg0\[[0-9]+\] == 1 && \((.*)\)$/\1/'))"
    fi
  elif [ "$action" = reroute ]; then
    if [ -n "$(ovnkr_fact policy_select "$facts")" ]; then
      # ECMP: trace each bucket to learn every next hop and gateway router.
      for id in $(tr ',' ' ' <<<"$(ovnkr_fact policy_select "$facts")"); do
        f2="$(ovnkr_trace "$pod" "$dst" "$pp" --select-id="$id" | ovnkr_trace_facts)"
        hops+=("$(ovnkr_fact policy_nexthop "$f2")")
        grs+=("$(ovnkr_fact gr "$f2")")
      done
      TRACE_VERDICT="rerouted $(IFS=/; echo "${hops[*]}")"
      line+=" rerouted by policy $(ovnkr_fact policy_prio "$facts") to $(IFS=/; echo "${hops[*]}") (ECMP, via $(IFS=/; echo "${grs[*]}"))"
    else
      TRACE_VERDICT="rerouted $(ovnkr_fact policy_nexthop "$facts")"
      line+=" rerouted by policy $(ovnkr_fact policy_prio "$facts") to $(ovnkr_fact policy_nexthop "$facts") (via $(ovnkr_fact gr "$facts"))"
    fi
    line+=" [match: $(ovnkr_fact policy_match "$facts")]"
  elif [ -n "$(ovnkr_fact lb_backends "$facts")" ]; then
    TRACE_VERDICT="balanced $(ovnkr_fact lb_backends "$facts")"
    line+=" load-balanced by its Service VIP to $(ovnkr_fact lb_backends "$facts")"
  elif [ "$(ovnkr_fact lb_reject "$facts")" = 1 ]; then
    TRACE_VERDICT="rejected"
    line+=" rejected by its Service VIP's load balancer (no endpoints)"
  elif [ "$action" = allow ]; then
    TRACE_VERDICT="allowed $(ovnkr_fact policy_prio "$facts")"
    line+=" not rerouted: allow policy $(ovnkr_fact policy_prio "$facts") ($(ovnkr_fact policy_match "$facts")), then normal routing $(ovnkr_route_words "$(ovnkr_fact route_nexthop "$facts")")"
  else
    TRACE_VERDICT="routed $(ovnkr_fact route_nexthop "$facts")"
    line+=" not rerouted (no policy matched): normal routing [$(ovnkr_fact route_match "$facts")] $(ovnkr_route_words "$(ovnkr_fact route_nexthop "$facts")")"
    [ -n "$(ovnkr_fact gr "$facts")" ] && line+=" (via $(ovnkr_fact gr "$facts"))"
  fi
  [ -n "$(ovnkr_fact out "$facts")" ] && [ "$TRACE_VERDICT" != dropped ] && [ "$TRACE_VERDICT" != rejected ] && [ ${#grs[@]} -eq 0 ] &&
    line+=", leaves OVN at $(ovnkr_fact out "$facts")"
  echo "$line"
}

# shellcheck shell=bash
# ovn-sandbox/lib.sh: a real local OVN with an ovn-kubernetes-shaped topology, and node1's
# pods as network namespaces. Sourced by `sandbox`, `demo` and `selftest`.
#
# Owns: the processes it starts (NB and SB ovsdb-server, ovn-northd; all in $OVNKR_RUN_DIR,
# stopped by pid file), the network namespaces it creates (named $OVNKR_NETNS_PREFIX...,
# recorded in $OVNKR_RUN_DIR/netns.list), and the CNI-cache-style files under
# $OVNKR_RUN_DIR/cni/results.
# Must not: touch a process, namespace or file it did not create (other sandboxes and test
# suites run on the same machine), rely on systemd, or use TCP ports (unix sockets only).
#
# Settings (environment):
#   OVNKR_RUN_DIR       run directory (default: ovn-sandbox/run beside this file)
#   OVNKR_NETNS_PREFIX  prefix of every network namespace created (default: ovnkr-)
#   OVNKR_NODE          the node whose pods become namespaces (default: node1)
#   OVNKR_WITH_PODS     0: OVN and the topology only, no namespaces (no root needed)

OVNKR_SANDBOX_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OVNKR_REPO="$(cd "$OVNKR_SANDBOX_HOME/.." && pwd)"
OVNKR_RUN_DIR="$(realpath -m "${OVNKR_RUN_DIR:-$OVNKR_SANDBOX_HOME/run}")"
OVNKR_NETNS_PREFIX="${OVNKR_NETNS_PREFIX:-ovnkr-}"
OVNKR_NODE="${OVNKR_NODE:-node1}"
OVNKR_WITH_PODS="${OVNKR_WITH_PODS:-1}"
OVNKR_NB_SCHEMA="${OVNKR_NB_SCHEMA:-/usr/share/ovn/ovn-nb.ovsschema}"
OVNKR_SB_SCHEMA="${OVNKR_SB_SCHEMA:-/usr/share/ovn/ovn-sb.ovsschema}"

# Derived paths. Unix socket paths must stay under 108 bytes (sun_path).
ovnkr_paths() {
  NB_SOCK="$OVNKR_RUN_DIR/nb.sock"
  SB_SOCK="$OVNKR_RUN_DIR/sb.sock"
  NB_DB="unix:$NB_SOCK"
  SB_DB="unix:$SB_SOCK"
  CNI_RESULTS="$OVNKR_RUN_DIR/cni/results"
  STATE_DIR="$OVNKR_RUN_DIR/state"
  NETNS_DIR="/var/run/netns"
  NETNS_LIST="$OVNKR_RUN_DIR/netns.list"
}
ovnkr_paths

ovnkr_log() { printf '[sandbox] %s\n' "$*" >&2; }
ovnkr_die() { printf '[sandbox] error: %s\n' "$*" >&2; exit 1; }

# A bounded wait: `--wait=sb` never returns when ovn-northd cannot commit to the SB, and a
# demo or test must fail with a message rather than hang.
nbctl() { ovn-nbctl --timeout="${OVNKR_NBCTL_TIMEOUT:-60}" --no-leader-only --db="$NB_DB" "$@"; }
sbctl() { ovn-sbctl --no-leader-only --db="$SB_DB" "$@"; }

# ---------------------------------------------------------------------------------------------
# The world: one table that everything else (NB rows, namespaces, CNI cache, world.yaml) is
# generated from, so they cannot disagree.
#
# namespace|name|node|mode|ovn_ip|calico_ip|labels|owner_kind|owner_name
#   mode: dual   = eth0 (Calico) + eth1 (OVN)
#         calico = eth0 only (no OVN interface: rules for eth1 are skipped)
#         host   = hostNetwork (no namespace of its own: skipped entirely)
# Pods on other nodes get their OVN logical switch port but no namespace here.
OVNKR_PODS=(
  "default|nginx-7c5ddbdf54-x8k2q|node1|dual|10.244.1.3|192.168.1.3|app=nginx,pod-template-hash=7c5ddbdf54|ReplicaSet|nginx-7c5ddbdf54"
  "default|client-a|node1|dual|10.244.1.4|192.168.1.4|app=client-a||"
  "default|client-b|node1|dual|10.244.1.5|192.168.1.5|app=client-b||"
  "kube-system|coredns-5d78c9869d-q7w4e|node1|dual|10.244.1.6|192.168.1.6|k8s-app=kube-dns,pod-template-hash=5d78c9869d|ReplicaSet|coredns-5d78c9869d"
  "lowlat|trader-0|node1|dual|10.244.1.7|192.168.1.7|app=trader,statefulset.kubernetes.io/pod-name=trader-0|StatefulSet|trader"
  "default|legacy-batch|node1|calico||192.168.1.8|app=legacy||"
  "kube-system|kube-proxy-n1x7k|node1|host|||k8s-app=kube-proxy|DaemonSet|kube-proxy"
  "default|nginx-7c5ddbdf54-m2p9d|node2|dual|10.244.2.3|192.168.2.3|app=nginx,pod-template-hash=7c5ddbdf54|ReplicaSet|nginx-7c5ddbdf54"
  "default|client-c|node2|dual|10.244.2.4|192.168.2.4|app=client-c||"
  "kube-system|coredns-5d78c9869d-z8r2t|node2|dual|10.244.2.6|192.168.2.6|k8s-app=kube-dns,pod-template-hash=5d78c9869d|ReplicaSet|coredns-5d78c9869d"
  "lowlat|trader-1|node2|dual|10.244.2.5|192.168.2.5|app=trader,statefulset.kubernetes.io/pod-name=trader-1|StatefulSet|trader"
  "kube-system|kube-proxy-w4c9s|node2|host|||k8s-app=kube-proxy|DaemonSet|kube-proxy"
)

# namespace|name|clusterIP|protocol/port|targetPort|selector
OVNKR_SERVICES=(
  "default|nginx|10.96.100.10|TCP/80|80|app=nginx"
  "kube-system|nginx1|10.96.100.11|TCP/80|80|app=nginx1"
  "kube-system|nginx2|10.96.100.12|TCP/80|80|app=nginx2"
  "kube-system|kube-dns|10.96.0.10|UDP/53|53|k8s-app=kube-dns"
)

# name|labels
OVNKR_NAMESPACES=(
  "default|kubernetes.io/metadata.name=default"
  "kube-system|kubernetes.io/metadata.name=kube-system"
  "lowlat|kubernetes.io/metadata.name=lowlat,tier=low-latency"
)

OVNKR_NODES=(node1 node2)
# node -> index N: subnet 10.244.N.0/24, join IP 100.64.0.(N+1), external IP 172.18.0.(N+1)
ovnkr_node_index() { echo "${1#node}"; }

# Stable identifiers derived from names, so world.yaml, the CNI cache and the NB agree across
# runs without storing anything.
ovnkr_hex() { printf '%s' "$1" | sha256sum | cut -c1-"${2:-64}"; }
ovnkr_uid() {
  local h
  h="$(ovnkr_hex "uid/$1" 32)"
  echo "${h:0:8}-${h:8:4}-4${h:13:3}-a${h:17:3}-${h:20:12}"
}
ovnkr_container_id() { ovnkr_hex "sandbox/$1"; }
# ovn-kubernetes derives a pod's MAC from its IP: 0a:58 followed by the four address bytes.
ovnkr_mac() {
  local IFS=.
  # shellcheck disable=SC2086
  set -- $1
  printf '0a:58:%02x:%02x:%02x:%02x\n' "$1" "$2" "$3" "$4"
}
ovnkr_netns() { echo "${OVNKR_NETNS_PREFIX}$1"; }
ovnkr_host_netns() { echo "${OVNKR_NETNS_PREFIX}host-$1"; }

# Split one OVNKR_PODS line into P_* variables.
ovnkr_pod_fields() {
  IFS='|' read -r P_NS P_NAME P_NODE P_MODE P_OVN_IP P_CALICO_IP P_LABELS P_OWNER_KIND P_OWNER_NAME <<<"$1"
}

# Find a pod line by name (unique in this world).
ovnkr_pod_by_name() {
  local line
  for line in "${OVNKR_PODS[@]}"; do
    ovnkr_pod_fields "$line"
    [ "$P_NAME" = "$1" ] && return 0
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# Processes

# True when the pid in pid file $1 is alive and was started with our run dir on its command line
# (a recycled pid belonging to someone else is never signalled).
ovnkr_pid_alive() {
  local pidfile="$1" pid
  [ -s "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$OVNKR_RUN_DIR/"
}

ovnkr_running() {
  ovnkr_pid_alive "$OVNKR_RUN_DIR/nb.pid" && ovnkr_pid_alive "$OVNKR_RUN_DIR/sb.pid" &&
    ovnkr_pid_alive "$OVNKR_RUN_DIR/northd.pid"
}

ovnkr_require_tools() {
  local t missing=()
  for t in ovsdb-server ovsdb-tool ovn-northd ovn-nbctl ovn-sbctl ovn-trace ip jq sha256sum; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] || ovnkr_die "missing tools: ${missing[*]} (run ./scripts/install-deps.sh)"
  [ -r "$OVNKR_NB_SCHEMA" ] || ovnkr_die "NB schema not found at $OVNKR_NB_SCHEMA"
  [ -r "$OVNKR_SB_SCHEMA" ] || ovnkr_die "SB schema not found at $OVNKR_SB_SCHEMA"
  [ "$OVNKR_WITH_PODS" = 0 ] || [ "$(id -u)" = 0 ] ||
    ovnkr_die "must run as root (network namespaces), or set OVNKR_WITH_PODS=0"
  [ ${#NB_SOCK} -le 100 ] || ovnkr_die "run dir path too long for a unix socket: $OVNKR_RUN_DIR"
}

# ovnkr_start_db nb|sb SCHEMA
ovnkr_start_db() {
  local which="$1" schema="$2" d="$OVNKR_RUN_DIR"
  rm -f "$d/$which.db" "$d/$which.sock" "$d/$which.ctl"
  ovsdb-tool create "$d/$which.db" "$schema"
  ovsdb-server "$d/$which.db" --detach --no-chdir \
    --pidfile="$d/$which.pid" --log-file="$d/$which.log" \
    --remote="punix:$d/$which.sock" --unixctl="$d/$which.ctl"
}

# Starts NB, SB, northd and builds the topology; a no-op when this run dir's sandbox already
# runs. Anything left half-started by an earlier failure is stopped first.
ovnkr_start() {
  ovnkr_require_tools
  if ovnkr_running; then
    ovnkr_log "already running in $OVNKR_RUN_DIR"
    return 0
  fi
  ovnkr_stop_quiet
  mkdir -p "$OVNKR_RUN_DIR" "$CNI_RESULTS" "$STATE_DIR"
  ovnkr_log "starting OVN in $OVNKR_RUN_DIR"
  ovnkr_start_db nb "$OVNKR_NB_SCHEMA"
  ovnkr_start_db sb "$OVNKR_SB_SCHEMA"
  ovn-northd --detach --no-chdir --pidfile="$OVNKR_RUN_DIR/northd.pid" \
    --log-file="$OVNKR_RUN_DIR/northd.log" --unixctl="$OVNKR_RUN_DIR/northd.ctl" \
    --ovnnb-db="$NB_DB" --ovnsb-db="$SB_DB"
  ovnkr_build_topology
  [ "$OVNKR_WITH_PODS" = 0 ] || ovnkr_build_pods
  nbctl --wait=sb sync
  ovnkr_log "ready: NB $NB_DB, SB $SB_DB, CNI results $CNI_RESULTS"
}

ovnkr_kill_pidfile() {
  local pidfile="$1" pid i
  ovnkr_pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
}

ovnkr_stop_quiet() {
  local ns
  ovnkr_kill_pidfile "$OVNKR_RUN_DIR/northd.pid"
  ovnkr_kill_pidfile "$OVNKR_RUN_DIR/nb.pid"
  ovnkr_kill_pidfile "$OVNKR_RUN_DIR/sb.pid"
  if [ -f "$NETNS_LIST" ]; then
    # Only the namespaces this sandbox recorded when it created them.
    while read -r ns; do
      [ -n "$ns" ] && [ -e "$NETNS_DIR/$ns" ] && ip netns del "$ns" 2>/dev/null || true
    done <"$NETNS_LIST"
    rm -f "$NETNS_LIST"
  fi
  rm -rf "$CNI_RESULTS" "$STATE_DIR"
  rm -f "$OVNKR_RUN_DIR"/*.sock "$OVNKR_RUN_DIR"/*.ctl
}

# Stops everything this run dir's sandbox started; a no-op when nothing runs. Logs stay.
ovnkr_stop() {
  ovnkr_stop_quiet
  ovnkr_log "stopped (logs kept in $OVNKR_RUN_DIR)"
}

ovnkr_status() {
  local f
  for f in nb sb northd; do
    if ovnkr_pid_alive "$OVNKR_RUN_DIR/$f.pid"; then
      echo "$f: running (pid $(cat "$OVNKR_RUN_DIR/$f.pid"))"
    else
      echo "$f: stopped"
    fi
  done
  if [ -f "$NETNS_LIST" ]; then
    echo "namespaces: $(tr '\n' ' ' <"$NETNS_LIST")"
  fi
}

# Every NB row not owned by ovnkube-route, as text in a stable order: compare two snapshots to
# prove that foreign rows were left byte-for-byte untouched.
ovnkr_foreign_snapshot() {
  local t
  for t in Logical_Router Logical_Switch Logical_Router_Policy Logical_Router_Static_Route \
    ACL Address_Set Port_Group Load_Balancer Logical_Switch_Port Logical_Router_Port NAT; do
    echo "== $t"
    nbctl --format=csv list "$t" | grep -v 'ovnkube-route' | sort
  done
}

# Shell lines to point ovn-nbctl / ovn-trace at this sandbox by hand.
ovnkr_env() {
  echo "export OVN_NB_DB=$NB_DB"
  echo "export OVN_SB_DB=$SB_DB"
}

# shellcheck source=ovn-sandbox/topology.sh
. "$OVNKR_SANDBOX_HOME/topology.sh"
# shellcheck source=ovn-sandbox/pods.sh
. "$OVNKR_SANDBOX_HOME/pods.sh"
# shellcheck source=ovn-sandbox/world.sh
. "$OVNKR_SANDBOX_HOME/world.sh"
# shellcheck source=ovn-sandbox/trace.sh
. "$OVNKR_SANDBOX_HOME/trace.sh"

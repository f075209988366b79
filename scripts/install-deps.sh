#!/usr/bin/env bash
# Installs what the tests and the sandbox need on a fresh Debian machine, only if missing.
# Real parts only: Debian's ovn-central (ovsdb-server, ovn-northd, ovn-nbctl, ovn-trace) and
# iproute2. Nothing is started here: tests and the sandbox start their own servers in temp dirs.
set -euo pipefail
need=()
command -v ovsdb-server >/dev/null || need+=(openvswitch-common)
command -v ovn-northd >/dev/null || need+=(ovn-central)
command -v ovn-nbctl >/dev/null || need+=(ovn-common)
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
command -v jq >/dev/null || need+=(jq)
# The image build (scripts/build-image.sh, tested in tests/image.rs): OCI images without an
# engine or a registry.
command -v umoci >/dev/null || need+=(umoci)
# The monitoring tests (tests/monitoring.rs): promtool for the alert rules' unit tests and a
# real Prometheus scraping a running controller.
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends ovn-central ovn-common openvswitch-common iproute2 openssl jq umoci prometheus
fi
# Debian's packages try to start services through systemd, which does not run here; make sure
# nothing the package may have started stays around to collide with the tests' own servers.
ovsdb-server --version | head -1
ovn-nbctl --version | head -1
promtool --version 2>&1 | head -1

#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this).
# Needs root (network namespaces) and installs ovn-central etc. when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "error: the test suite programs network namespaces and must run as root" >&2
  exit 1
fi
./scripts/install-deps.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Integration tests start their own ovsdb-server / ovn-northd in temp dirs; they require root
# and the OVN binaries and fail loudly (never skip) when either is missing.
export OVNKUBE_ROUTE_REQUIRE_ROOT_TESTS=1
cargo test --all-targets -- --test-threads=2

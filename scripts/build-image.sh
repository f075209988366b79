#!/usr/bin/env bash
# Builds the ovnkube-route OCI image without a registry or a container engine:
#   1. a static binary (glibc, crt-static),
#   2. an OCI image layout with umoci (Debian package), ENTRYPOINT and CMD taken from the
#      Containerfile, and /kubectl-route, a symlink to the binary (the kubectl plugin),
#   3. an OCI archive: target/image/ovnkube-route-<version>.oci.tar
# Load it with `skopeo copy oci-archive:FILE docker://REGISTRY/ovnkube-route:TAG` or
# `podman load -i FILE`.
#
# Usage: scripts/build-image.sh [--debug] [--out DIR]
#   --debug   debug build (faster to compile; what the test suite uses)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
out=target/image
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--debug] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v umoci >/dev/null; then
  echo "installing umoci"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update && apt-get install -y --no-install-recommends umoci
fi
target=x86_64-unknown-linux-gnu
flags=(--target "$target")
[ "$profile" = release ] && flags+=(--release)
echo "building a static binary ($profile)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --bin ovnkube-route "${flags[@]}"
bin="target/$target/$profile/ovnkube-route"
# `ldd` says "statically linked" (static-pie) or "not a dynamic executable".
if ldd "$bin" 2>&1 | grep -q '=>'; then
  echo "error: $bin is dynamically linked:" >&2
  ldd "$bin" >&2
  exit 1
fi

# ENTRYPOINT / CMD of the Containerfile (JSON form) as umoci arguments.
json_args() {
  local key="$1" flag="$2"
  sed -n "s/^$key \(\[.*\]\)\$/\1/p" Containerfile | jq -r '.[]' | while IFS= read -r a; do
    printf '%s\0%s\0' "$flag" "$a"
  done
}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$out"
layout="$out/layout"
rm -rf "$layout" "$out/bundle"
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci unpack --image "$layout:$version" "$out/bundle"
# Stripped: the image carries no debug information.
install -s -m 0755 "$bin" "$out/bundle/rootfs/ovnkube-route"
# The kubectl plugin is the same binary started as kubectl-route (docs/install.md).
ln -s ovnkube-route "$out/bundle/rootfs/kubectl-route"
umoci repack --image "$layout:$version" "$out/bundle"
mapfile -d '' entry < <(json_args ENTRYPOINT --config.entrypoint)
mapfile -d '' cmd < <(json_args CMD --config.cmd)
umoci config --image "$layout:$version" --config.user 0:0 --os linux --architecture amd64 \
  --clear config.entrypoint --clear config.cmd "${entry[@]}" "${cmd[@]}"
umoci gc --layout "$layout"
rm -rf "$out/bundle"
archive="$out/ovnkube-route-$version.oci.tar"
tar -C "$layout" -cf "$archive" .
echo "image: $archive (OCI layout: $layout, tag $version)"

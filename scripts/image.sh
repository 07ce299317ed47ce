#!/usr/bin/env bash
# `make image`: the production image (Dockerfile) built on a machine without an image registry.
# Installs Debian's Docker engine and debootstrap when missing; starts the engine if none runs
# (no bridge and no iptables rules: containers use the host's network) and stops it again after;
# makes a Debian bookworm base with debootstrap once (kept as mlops-base:bookworm); builds the
# project's image on it (IMAGE, default mlops:local) with the host's network and CA bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:-mlops:local}
base=mlops-base:bookworm
sources=/etc/apt/sources.list.d/debian.sources
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "Installing Debian's docker.io and debootstrap ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap > /tmp/mlops-image-apt.log
fi
docker=/usr/bin/docker  # the engine's own client
started=""
cleanup() {
  rm -f build-ca.pem
  if [ -n "$started" ]; then kill "$started" 2>/dev/null && wait "$started" 2>/dev/null || true; fi
}
trap cleanup EXIT
if ! "$docker" info >/dev/null 2>&1; then
  echo "Starting the Docker engine (log: /tmp/mlops-dockerd.log) ..."
  dockerd --bridge=none --iptables=false --ip6tables=false > /tmp/mlops-dockerd.log 2>&1 &
  started=$!
  for _ in $(seq 1 30); do "$docker" info >/dev/null 2>&1 && break; sleep 1; done
  "$docker" info >/dev/null 2>&1 || { echo "the Docker engine did not start; see /tmp/mlops-dockerd.log" >&2; exit 1; }
fi

if ! "$docker" image inspect "$base" >/dev/null 2>&1; then
  echo "Making the base image $base with debootstrap from $mirror ..."
  root=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$root" "$mirror" > /tmp/mlops-debootstrap.log
  tar -C "$root" -c . | "$docker" import - "$base" > /dev/null
  rm -rf "$root"
fi

cp /etc/ssl/certs/ca-certificates.crt build-ca.pem  # trusted during the build only (see Dockerfile)
echo "Building $image on $base ..."
"$docker" build --network host --build-arg BASE_IMAGE="$base" -t "$image" . > /tmp/mlops-image-build.log
echo "Built $image (log: /tmp/mlops-image-build.log)"

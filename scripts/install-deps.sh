#!/usr/bin/env bash
# Install everything ezctl's lab, tests and demo need on a Debian 12 controller.
# Idempotent: packages already present are not touched.
set -euo pipefail

PACKAGES=(
  # the lab: real machines with systemd, each in its own network namespace
  systemd-container debootstrap iproute2 openssh-client openssh-server sudo
  # real components shipped to the hosts (from Debian, into the bin/ bundle)
  etcd-server etcd-client containerd runc containernetworking-plugins
  nginx-light libnginx-mod-stream keepalived docker-registry skopeo
  # tools the tests use
  openssl curl python3-venv
  # scripts/build-components.sh: runc links libseccomp statically (cgo), pause
  # is C (gcc -static); readelf checks the binaries are static
  gcc libc6-dev libseccomp-dev binutils
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -q
  # Package scripts must not start services on the controller (no systemd here anyway).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

command -v kubectl >/dev/null || echo "install-deps: warning: kubectl is not installed; tests that need it will say so and skip" >&2
command -v cargo >/dev/null || { echo "install-deps: cargo (Rust toolchain) is required" >&2; exit 1; }
# Many machines: raise inotify limits (systemd in each machine watches files).
sysctl -q -w fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=1048576 || true
echo "install-deps: ok"

#!/usr/bin/env bash
# Assemble a binary bundle for the lab from Debian's packages and the
# TEST-ONLY Kubernetes stand-ins (crates/standins). Real hosts get the real
# Kubernetes binaries instead (ezctl download, or drop them into bin/).
#
#   scripts/test-bundle.sh DEST [KUBE_VERSION]     e.g. scripts/test-bundle.sh bin v1.30.1
#
# Files whose content is already in place are left alone (mtime kept), so a
# re-run changes nothing and ezctl sees nothing new to push.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: test-bundle.sh DEST [KUBE_VERSION]}
kube_version=${2:-v1.30.1}
profile=${PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-target}

put() { # put SRC NAME: copy into the bundle unless identical
  local src=$1 name=$2
  [ -e "$src" ] || { echo "test-bundle: missing $src (run scripts/install-deps.sh)" >&2; exit 1; }
  mkdir -p "$(dirname "$dest/$name")"
  if ! cmp -s "$src" "$dest/$name"; then
    cp -f "$src" "$dest/$name.tmp" && mv -f "$dest/$name.tmp" "$dest/$name"
  fi
}

# etcd and its client (Debian etcd-server / etcd-client 3.4)
put /usr/bin/etcd etcd
put /usr/bin/etcdctl etcdctl
# container runtime
put /usr/bin/containerd containerd
put /usr/bin/containerd-shim-runc-v2 containerd-shim-runc-v2
put /usr/bin/ctr ctr
put /usr/sbin/runc runc
for p in bridge host-local loopback portmap bandwidth tuning; do
  put "/usr/lib/cni/$p" "cni/$p"
done
# kube-lb / ex-lb: nginx with its stream module, keepalived
put /usr/sbin/nginx nginx
put /usr/lib/nginx/modules/ngx_stream_module.so ngx_stream_module.so
put /usr/sbin/keepalived keepalived
# registry for the harbor step (an existing registry, integrated)
put /usr/bin/docker-registry registry
# kubectl (client). Some machines ship a version dispatcher as /usr/bin/kubectl
# with the real clients beside it: take the one matching the cluster's minor.
kubectl=/usr/bin/kubectl
minor=$(echo "$kube_version" | sed -E 's/^v?([0-9]+\.[0-9]+).*/\1/')
real_dir=$(dirname "$(readlink -f /usr/bin/kubectl)")
[ -x "$real_dir/kubectl.$minor" ] && kubectl="$real_dir/kubectl.$minor"
put "$kubectl" kubectl

# Kubernetes server stand-ins, stamped with the requested version.
if [ "$profile" = release ]; then flag=--release; else flag=; fi
# NO_BUILD=1: the stand-ins are already built (e.g. by `cargo test`).
[ "${NO_BUILD:-0}" = 1 ] || cargo build -q $flag -p ez-standins
bins="${BINS_DIR:-$target_dir/$profile}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  "$bins/standin-set-version" "$bins/$b" "$tmp/$b" "$kube_version"
  put "$tmp/$b" "$b"
done
find "$dest" -type f ! -name '*.toml' ! -name '*.md' -exec chmod 0755 {} +
echo "test-bundle: $dest ready (Kubernetes stand-ins $kube_version)"

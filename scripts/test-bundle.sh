#!/usr/bin/env bash
# Assemble the binary bundle (ezctl's bin/) for the lab and the demo from real
# components: Kubernetes, etcd, containerd, runc, CNI plugins, the network
# (calico) and the images, all built from their official Go modules by
# scripts/build-components.sh into /var/cache/ezctl-build; nginx, keepalived
# and the registry from Debian's packages. Real hosts can take the official
# release binaries instead (`ezctl download`).
#
#   scripts/test-bundle.sh DEST [KUBE_VERSION]     e.g. scripts/test-bundle.sh bin 1.37.2
#
# Builds what is missing (a warm cache: seconds). Files whose content is
# already in place are left alone (mtime kept), so a re-run changes nothing
# and ezctl sees nothing new to push.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: test-bundle.sh DEST [KUBE_VERSION]}
build=scripts/build-components.sh

pin() { # pin KEY: a version from bin/versions.toml [build]
  awk -v k="$1" '/^\[/{t=($0=="[build]");next} t&&$1==k{sub(/^[^=]*=[ \t]*"/,"");sub(/".*$/,"");print;exit}' bin/versions.toml
}
image_ref() { # image_ref NAME: name:tag from bin/versions.toml [build.images]
  awk -v k="$1" '/^\[/{t=($0=="[build.images]");next} t&&$1==k{sub(/^[^=]*=[ \t]*"/,"");sub(/".*$/,"");print;exit}' bin/versions.toml
}

kube_version=${2:-$(pin kubernetes)}
kube_version=${kube_version#v}

# Everything pinned (no-op when warm), plus the requested Kubernetes release.
if [ "${NO_BUILD:-0}" != 1 ]; then
  "$build" >&2
  "$build" kubernetes "$kube_version" >&2
fi
dir_of() { "$build" --print-dir "$@"; }

put() { # put SRC NAME: copy into the bundle unless identical
  local src=$1 name=$2
  [ -e "$src" ] || { echo "test-bundle: missing $src (run scripts/build-components.sh, scripts/install-deps.sh)" >&2; exit 1; }
  mkdir -p "$(dirname "$dest/$name")"
  if ! cmp -s "$src" "$dest/$name"; then
    cp -f "$src" "$dest/$name.tmp" && mv -f "$dest/$name.tmp" "$dest/$name"
  fi
}

kube=$(dir_of kubernetes "$kube_version")
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  put "$kube/$b" "$b"
done
etcd=$(dir_of etcd "$(pin etcd)")
for b in etcd etcdctl etcdutl; do put "$etcd/$b" "$b"; done
containerd=$(dir_of containerd "$(pin containerd)")
for b in containerd containerd-shim-runc-v2 ctr; do put "$containerd/$b" "$b"; done
put "$(dir_of runc "$(pin runc)")/runc" runc
cni=$(dir_of cni-plugins "$(pin cni-plugins)")
for p in bridge host-local loopback portmap bandwidth tuning ptp; do
  put "$cni/$p" "cni/$p"
done

# The pod networks: images under images/<network>/ (a node imports only its
# cluster's CLUSTER_NETWORK) and the upstream manifests of the release.
# flannel is always built; calico where its source is available (its api
# module is not served by the Go proxy: docs/real-kubernetes.md).
flannel_v=$(pin flannel)
[ "${NO_BUILD:-0}" = 1 ] || "$build" flannel "$flannel_v" >&2
flannel=$(dir_of flannel "$flannel_v")
for i in flannel flannel-cni-plugin; do
  put "$flannel/images/$i.tar" "images/flannel/$i.tar"
done
put "$flannel/manifests/kube-flannel.yml" manifests/flannel/kube-flannel.yml
calico_v=$(pin calico)
if why=$("$build" --available calico "$calico_v"); then
  [ "${NO_BUILD:-0}" = 1 ] || "$build" calico "$calico_v" >&2
  calico=$(dir_of calico "$calico_v")
  for i in node cni kube-controllers; do
    put "$calico/images/$i.tar" "images/calico/$i.tar"
  done
  for m in calico.yaml calico-vxlan.yaml; do
    put "$calico/manifests/$m" "manifests/calico/$m"
  done
  echo "test-bundle: networks: calico $calico_v, flannel $flannel_v" >&2
else
  rm -rf "$dest/images/calico" "$dest/manifests/calico"
  echo "test-bundle: networks: flannel $flannel_v; no calico: $why" >&2
fi
# Images every node gets offline (kubeasz's way: no registry on the internet).
for i in pause coredns busybox; do
  ref=$(image_ref "$i")
  put "$(dir_of image "$i" "$ref")/image.tar" "images/$i.tar"
done

# kube-lb / ex-lb: nginx with its stream module, keepalived
put /usr/sbin/nginx nginx
put /usr/lib/nginx/modules/ngx_stream_module.so ngx_stream_module.so
put /usr/sbin/keepalived keepalived
# registry for the harbor step (an existing registry, integrated)
put /usr/bin/docker-registry registry

find "$dest" -type f ! -path "$dest/images/*" ! -path "$dest/manifests/*" \
  ! -name '*.toml' ! -name '*.md' -exec chmod 0755 {} +
echo "test-bundle: $dest ready (Kubernetes v$kube_version)"

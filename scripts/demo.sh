#!/usr/bin/env bash
# The main job on an embedded default: boot a local fleet of 7 real machines
# (3 etcd, 2 masters, 2 nodes; ex-lb and a registry on the nodes) and turn it
# into an HA Kubernetes cluster with ezctl, running real pods. Safe to run
# again: every step is idempotent, and a second run reports changed=0.
#
# Every component is real: Kubernetes, etcd, containerd, runc, the CNI
# plugins, the pod network and CoreDNS are built from their official Go
# modules into /var/cache/ezctl-build (the first run on a fresh machine takes
# a while: see docs/real-kubernetes.md); nginx, keepalived and the registry
# are Debian's.
#
#   scripts/demo.sh          build, boot, provision, then print what to try
#   scripts/demo.sh --hint   print only what to try, for a demo already up
#
# The "Try:" lines are the only list of the commands the demo suggests:
# crates/ezctl/tests/e2e_demo_hint.rs runs every one of them against a lab
# (through --hint, with DEMO_NAME, EZCTL, EZLAB and EZCTL_HOME set).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${DEMO_NAME:-demo}
ezctl=${EZCTL:-target/release/ezctl}
ezlab=${EZLAB:-target/release/ezlab}
kubectl="bin/kubectl --kubeconfig=clusters/$name/ssl/kubectl.kubeconfig"

hint() {
  local master
  master=$(awk '/^kube_master:/{f=1;next} f&&/^  - /{print $2; exit}' "${EZCTL_HOME:-$PWD}/clusters/$name/hosts.yml")
  cat <<MSG

The cluster is up. Its inventory and certificates are in clusters/$name/.
Try:
  $kubectl get pods -A
  $ezctl exec $name -g etcd -- systemctl is-active etcd
  $ezctl setup $name all            # again: changed=0 everywhere
  $ezctl setup $name all --dry-run  # what would change, with diffs
  $ezlab ssh $master -- journalctl -u kube-apiserver -n 20
  $ezlab status
  $ezlab down --name $name          # tear the fleet down
MSG
}

if [ "${1:-}" = --hint ]; then
  hint
  exit 0
fi

scripts/install-deps.sh
cargo build --release -p ezctl -p ez-lab
scripts/build-lab-components.sh
export EZCTL_HOME="$PWD"
NO_BUILD=1 scripts/test-bundle.sh bin

$ezlab up 7 --name "$name"
# The pod network: calico when it could be built here, else flannel.
if [ -d bin/manifests/calico ]; then network=calico; else network=flannel; fi
grep -q '^CLUSTER_NETWORK:' "clusters/$name/config.yml" ||
  { sed -i '/^{}$/d' "clusters/$name/config.yml"; echo "CLUSTER_NETWORK: $network" >>"clusters/$name/config.yml"; }
$ezctl check "$name"
$ezctl setup "$name" all
$ezctl setup "$name" 10      # external load balancer + keepalived VIP
$ezctl setup "$name" 11      # registry on the harbor host, trusted by every node

echo
$kubectl version
$kubectl get nodes -o wide
$kubectl get pods -A -o wide
hint

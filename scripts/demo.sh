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
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p ezctl -p ez-lab
scripts/build-lab-components.sh
export EZCTL_HOME="$PWD"
NO_BUILD=1 scripts/test-bundle.sh bin
ezctl=target/release/ezctl
ezlab=target/release/ezlab
kubectl="bin/kubectl --kubeconfig=clusters/demo/ssl/kubectl.kubeconfig"

$ezlab up 7 --name demo
# The pod network: calico when it could be built here, else flannel.
if [ -d bin/manifests/calico ]; then network=calico; else network=flannel; fi
grep -q '^CLUSTER_NETWORK:' clusters/demo/config.yml ||
  { sed -i '/^{}$/d' clusters/demo/config.yml; echo "CLUSTER_NETWORK: $network" >>clusters/demo/config.yml; }
$ezctl check demo
$ezctl setup demo all
$ezctl setup demo 10      # external load balancer + keepalived VIP
$ezctl setup demo 11      # registry on the harbor host, trusted by every node

master=$(awk '/^kube_master:/{f=1;next} f&&/^  - /{print $2; exit}' clusters/demo/hosts.yml)
echo
$kubectl version
$kubectl get nodes -o wide
$kubectl get pods -A -o wide
cat <<MSG

The cluster is up. Its inventory and certificates are in clusters/demo/.
Try:
  $kubectl get pods -A
  $ezctl exec demo -g etcd -- systemctl is-active etcd
  $ezctl setup demo all            # again: changed=0 everywhere
  $ezctl setup demo all --dry-run  # what would change, with diffs
  $ezlab ssh $master -- journalctl -u kube-apiserver -n 20
  $ezlab status
  $ezlab down --name demo          # tear the fleet down
MSG

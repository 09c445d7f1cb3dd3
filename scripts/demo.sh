#!/usr/bin/env bash
# The main job on an embedded default: boot a local fleet of 7 real machines
# (3 etcd, 2 masters, 2 nodes; ex-lb and a registry on the nodes) and turn it
# into an HA Kubernetes cluster with ezctl. Safe to run again: every step is
# idempotent, and a second run reports changed=0.
#
# Kubernetes server binaries cannot be downloaded here, so the bundle uses the
# TEST-ONLY stand-ins from crates/standins (see README); everything else is
# real (etcd, containerd, runc, CNI plugins, nginx, keepalived, registry).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p ezctl -p ez-lab -p ez-standins
export EZCTL_HOME="$PWD"
PROFILE=release NO_BUILD=1 scripts/test-bundle.sh bin v1.30.1
ezctl=target/release/ezctl
ezlab=target/release/ezlab

$ezlab up 7 --name demo
$ezctl check demo
$ezctl setup demo all
$ezctl setup demo 10      # external load balancer + keepalived VIP
$ezctl setup demo 11      # registry on the harbor host, trusted by every node

master=$(awk '/^kube_master:/{f=1;next} f&&/^  - /{print $2; exit}' clusters/demo/hosts.yml)
echo
bin/kubectl --kubeconfig=clusters/demo/ssl/kubectl.kubeconfig get nodes -o wide
cat <<MSG

The cluster is up. Its inventory and certificates are in clusters/demo/.
Try:
  bin/kubectl --kubeconfig=clusters/demo/ssl/kubectl.kubeconfig get nodes     # through the ex-lb VIP
  $ezctl exec demo -g etcd -- systemctl is-active etcd
  $ezctl setup demo all            # again: changed=0 everywhere
  $ezctl setup demo all --dry-run  # what would change, with diffs
  $ezlab ssh $master -- journalctl -u kube-apiserver -n 20
  $ezlab status
  $ezlab down --name demo          # tear the fleet down
MSG

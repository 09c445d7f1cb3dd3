#!/usr/bin/env bash
# The upstream Kubernetes conformance tests (the [Conformance] specs of
# k8s.io/kubernetes/test/e2e at the cluster's release, run by ginkgo) against
# a 7-machine cluster that ezctl sets up on lab machines: 3 etcd, 2 masters,
# 2 nodes, with the ex-lb and the registry hosts of the default layout.
#
#   scripts/conformance.sh --quick      a fixed sample of 27 specs across the SIGs (QUICK below)
#   scripts/conformance.sh              every [Conformance] spec (hours on 2 cores)
#   scripts/conformance.sh --focus RE   the [Conformance] specs matching RE
#   scripts/conformance.sh --list       the [Conformance] specs of the suite, no lab
#
# Options: --nodes N (ginkgo processes, default 4), --timeout D (ginkgo's
# suite timeout, default 6h), --keep (leave the lab up afterwards; a later
# run reuses it: every step is idempotent).
#
# The suite comes from the build cache ($CACHE/conformance/<version>: e2e.test,
# ginkgo, and the test images as docker-archives, named under
# registry.ezctl.local, where KUBE_TEST_REPO_LIST points the suite; SOURCE
# there says how each was made). The images reach the nodes as ezctl's
# offline images (bin/images/*.tar, imported into containerd by setup 03),
# exactly as a site without internet access would ship them.
#
# Prints the counts (passed, failed, skipped, not runnable and why) and
# leaves ginkgo's JSON and JUnit reports in $HOME_DIR/report/. Record them in
# docs/conformance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
CACHE=${EZCTL_BUILD_CACHE:-/var/cache/ezctl-build}
HOME_DIR=${CONFORMANCE_HOME:-/var/lib/ezctl-conformance}
name=${CONFORMANCE_LAB:-conformance}
nodes=4 timeout=6h keep=0 mode=full focus=''

die() { printf 'conformance: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'conformance: %s\n' "$*" >&2; }
pin() { awk -v k="$1" '/^\[/{t=($0=="[build]");next} t&&$1==k{sub(/^[^=]*=[ \t]*"/,"");sub(/".*$/,"");print;exit}' bin/versions.toml; }

# Not runnable here, each with why (ginkgo skips them; counted apart).
NOT_RUNNABLE=(
  # Its image (e2e-test-images/nonewprivs) is built from a C program with
  # a Dockerfile; nothing here builds it from a Go module.
  'Security Context when creating containers with AllowPrivilegeEscalation should not allow privilege escalation when false'
)

# The quick sample: one or two specs per area a provisioner can break
# (pod network, services and kube-proxy, DNS, admission webhooks reached
# from the apiserver, aggregation-free API machinery, volumes, workloads,
# kubelet, logs, exec and port-forward through the apiserver).
QUICK=(
  'Pods should be submitted and removed'
  'Pods should get a host IP'
  'Services should serve a basic endpoint from pods'
  'Services should serve multiport endpoints from pods'
  'Services should be able to create a functioning NodePort service'
  'DNS should provide DNS for the cluster'
  'DNS should provide DNS for services'
  'Networking Granular Checks: Pods should function for intra-pod communication: http'
  'Networking Granular Checks: Pods should function for node-pod communication: udp'
  'Proxy version v1 should proxy through a service and a pod'
  'AdmissionWebhook \[Privileged:ClusterAdmin\] should be able to deny pod and configmap creation'
  'CustomResourceDefinition resources \[Privileged:ClusterAdmin\] Simple CustomResourceDefinition creating/deleting custom resource definition objects works'
  'Secrets should be consumable from pods in env vars'
  'Downward API should provide pod name, namespace and IP address as env vars'
  'EmptyDir volumes should support \(root,0644,tmpfs\)'
  'Variable Expansion should allow substituting values in a container.s args'
  'Deployment RollingUpdateDeployment should delete old pods and create new ones'
  'ReplicaSet should serve a basic image on each replica with a public image'
  'Job should run a job to completion when tasks sometimes fail and are locally restarted'
  'ResourceQuota should create a ResourceQuota and capture the life of a pod'
  'Container Runtime blackbox test on terminated container should report termination message if TerminationMessagePath is set as non-root user and at a non-default path'
  'Kubelet when scheduling a busybox command in a pod should print the output to logs'
  'Kubectl client Kubectl version should check is all data is printed'
  'Kubectl logs logs should be able to retrieve and filter logs'
  'PreStop should call prestop when killing a pod'
  'Lease lease API should be available'
  'Ephemeral Containers will start an ephemeral container in an existing pod'
)

while [ $# -gt 0 ]; do
  case $1 in
    --quick) mode=quick ;;
    --focus) mode=focus focus=${2:?--focus needs a regular expression}; shift ;;
    --list) mode=list ;;
    --nodes) nodes=${2:?--nodes needs a number}; shift ;;
    --timeout) timeout=${2:?--timeout needs a duration, e.g. 2h}; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

version=$(pin kubernetes)
suite=$CACHE/conformance/$version
for f in bin/e2e.test bin/ginkgo repo-list.yaml; do
  [ -e "$suite/$f" ] || die "no $suite/$f: the conformance suite for Kubernetes $version is not in the build cache (docs/conformance.md says how it is built)"
done
export KUBE_TEST_REPO_LIST=$suite/repo-list.yaml

join_re() { local IFS='|'; echo "$*"; }
case $mode in
  list)
    "$suite/bin/e2e.test" --list-tests 2>/dev/null | grep -F '[Conformance]' | sed 's/^[^:]*:[0-9]*: //'
    exit 0 ;;
  quick) focus="($(join_re "${QUICK[@]}")).*\[Conformance\]" ;;
  full) focus='\[Conformance\]' ;;
  focus) focus="($focus).*\[Conformance\]|\[Conformance\].*($focus)" ;;
esac
skip=$(join_re "${NOT_RUNNABLE[@]}")

[ "$(id -u)" -eq 0 ] || die "the lab needs root"
scripts/install-deps.sh >/dev/null
cargo build -q --release -p ezctl -p ez-lab
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$repo/$target ;; esac
ezctl="$target/release/ezctl --home $HOME_DIR"
ezlab="$target/release/ezlab --home $HOME_DIR"
scripts/build-lab-components.sh >/dev/null

# An ezctl home outside the clone: the repo's roles and playbooks, the
# example cluster, the bundle plus the suite's images as offline images.
mkdir -p "$HOME_DIR/clusters/example" "$HOME_DIR/bin/images"
for d in roles playbooks; do ln -sfn "$repo/$d" "$HOME_DIR/$d"; done
cp clusters/example/hosts.yml clusters/example/config.yml "$HOME_DIR/clusters/example/"
NO_BUILD=1 scripts/test-bundle.sh "$HOME_DIR/bin" "$version" >/dev/null
for tar in "$suite"/images/*.tar; do
  # A hard link: same bytes, same mtime, so a re-run sends nothing new.
  ln -f "$tar" "$HOME_DIR/bin/images/e2e-$(basename "$tar")" 2>/dev/null \
    || cp -p "$tar" "$HOME_DIR/bin/images/e2e-$(basename "$tar")"
done

started=$SECONDS
$ezlab up 7 --name "$name" >&2
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() { [ "$keep" = 1 ] || $ezlab down --name "$name" >&2 || true; }
trap cleanup EXIT
cluster=$HOME_DIR/clusters/$name
if [ -d "$HOME_DIR/bin/manifests/calico" ]; then network=calico; else network=flannel; fi
grep -q '^CLUSTER_NETWORK:' "$cluster/config.yml" ||
  { sed -i '/^{}$/d' "$cluster/config.yml"; echo "CLUSTER_NETWORK: $network" >>"$cluster/config.yml"; }
$ezctl check "$name" >&2
$ezctl setup "$name" all >&2
$ezctl setup "$name" 10 >&2
set_up=$((SECONDS - started))
say "cluster set up in $set_up s ($network); running the suite"

report=$HOME_DIR/report
rm -rf "$report" && mkdir -p "$report"
kubeconfig=$cluster/ssl/kubectl.kubeconfig
rc=0
(cd "$report" && "$suite/bin/ginkgo" --nodes="$nodes" --timeout="$timeout" \
  --focus="$focus" --skip="$skip" --no-color --json-report=report.json --junit-report=junit.xml \
  "$suite/bin/e2e.test" -- \
  --kubeconfig="$kubeconfig" --provider=skeleton --report-dir="$report" \
  --dump-logs-on-failure=false) >"$report/ginkgo.log" 2>&1 || rc=$?
ran=$((SECONDS - started - set_up))

python3 - "$report/report.json" "$mode" "$ran" "$set_up" "$suite" "${NOT_RUNNABLE[@]}" <<'PY'
import json, sys
path, mode, ran, set_up, suite = sys.argv[1:6]
not_runnable = sys.argv[6:]
specs = [s for r in json.load(open(path)) for s in r.get("SpecReports", []) if s.get("LeafNodeType") == "It"]
def name(s): return " ".join(s.get("ContainerHierarchyTexts") or []) + " " + s.get("LeafNodeText", "")
by = {}
for s in specs:
    by.setdefault(s["State"], []).append(s)
ran_specs = [s for s in specs if s["State"] not in ("skipped", "pending")]
print(f"conformance ({mode}): {len(ran_specs)} specs run in {ran} s after a {set_up} s setup; suite {suite}")
for state in ("passed", "failed", "timedout", "interrupted", "panicked", "aborted"):
    if by.get(state):
        print(f"  {state:12} {len(by[state])}")
print(f"  not runnable {len(not_runnable)} (excluded, see the script)")
for s in sorted(ran_specs, key=name):
    if s["State"] != "passed":
        f = s.get("Failure", {}) or {}
        print(f"  {s['State'].upper()}: {name(s)}\n      {f.get('Message', '').strip().splitlines()[0] if f.get('Message') else ''}")
PY
say "reports in $report (ginkgo.log, report.json, junit.xml)"
exit "$rc"

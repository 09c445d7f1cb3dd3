#!/usr/bin/env bash
# Everything the lab and the tests run, built from official Go modules into
# the build cache (scripts/build-components.sh does the work; warm: seconds):
# the pinned components and images, the pod networks (calico only where its
# source is available, see docs/real-kubernetes.md), and the older
# Kubernetes release the upgrade tests start from.
set -euo pipefail
cd "$(dirname "$0")/.."
build=scripts/build-components.sh
pin() { # pin KEY: a version from bin/versions.toml [build]
  awk -v k="$1" '/^\[/{t=($0=="[build]");next} t&&$1==k{sub(/^[^=]*=[ \t]*"/,"");sub(/".*$/,"");print;exit}' bin/versions.toml
}
start=$SECONDS
"$build"
"$build" flannel "$(pin flannel)"
if why=$("$build" --available calico "$(pin calico)"); then
  "$build" calico "$(pin calico)"
else
  echo "build-lab-components: calico not built: $why" >&2
fi
"$build" kubernetes "$(pin kubernetes-previous)"
echo "build-lab-components: ready in $((SECONDS - start)) s" >&2

# shellcheck shell=bash
# Recipe for scripts/build-components.sh (sourced): kube-* server commands and kubectl.
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them
# with local folders; as a dependency those replaces are ignored, so the
# wrapper replaces each with its published v0.<minor>.<patch>.
build_kubernetes() {
  local v=$1 staging_v="v0.${1#*.}"
  local major=${v%%.*} minor
  minor=$(echo "$v" | cut -d. -f2)
  local mod_url=https://proxy.golang.org/k8s.io/kubernetes/@v/v$v.mod
  (
    cd "$work"
    # The staging list is whatever this release's go.mod pins at v0.0.0.
    go mod download -json "k8s.io/kubernetes@v$v" >/dev/null
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@v$v ($mod_url)"
    {
      echo "module ezctl.local/build/kubernetes"
      echo
      sed -n 's/^go \(.*\)/go \1/p' "$gomod" | head -1
      echo
      echo "require k8s.io/kubernetes v$v"
      echo
      grep -E '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v sv="$staging_v" '{ printf "replace %s => %s %s\n", $1, $1, sv }'
    } >go.mod
    rm -f go.sum
    local pkg=k8s.io/component-base/version cpkg=k8s.io/client-go/pkg/version
    local date
    date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
    local ld="-s -w"
    for p in $pkg $cpkg; do
      ld="$ld -X $p.gitVersion=v$v -X $p.gitMajor=$major -X $p.gitMinor=$minor"
      ld="$ld -X $p.gitCommit=module-v$v -X $p.gitTreeState=clean -X $p.buildDate=$date"
    done
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
      local t=$SECONDS
      go build -trimpath -ldflags "$ld" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
      log "  $cmd: $((SECONDS - t)) s"
    done
    # Read the whole output before grep: `kubectl ... | grep -q` under
    # pipefail fails at random (grep exits at its match, kubectl then dies of
    # SIGPIPE writing its next line; seen on a cold build).
    local said
    said=$("$out/kubectl" version --client)
    grep -q "v$v" <<<"$said" || die "kubectl does not report v$v: $said"
  )
}


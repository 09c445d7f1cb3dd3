# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipe for scripts/build-components.sh (sourced): etcd, etcdctl, etcdutl.
# Each command is its own module upstream (server/v3, etcdctl/v3, etcdutl/v3)
# whose go.mod points its etcd siblings at local folders; as a dependency those
# replaces are ignored and the siblings resolve to the same published tag. One
# wrapper per command keeps each binary on exactly the dependency versions its
# own module pins (one shared wrapper would raise them to the maximum of all
# three). The version string is a literal in go.etcd.io/etcd/api/v3/version;
# only GitSHA is stamped at link time upstream (no commit in a module zip).
build_etcd() {
  local v=$1
  local ld="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-v$v"
  local cmd mod
  for cmd in etcd etcdctl etcdutl; do
    case $cmd in
      etcd) mod=go.etcd.io/etcd/server/v3 ;;
      *) mod=go.etcd.io/etcd/$cmd/v3 ;;
    esac
    local t=$SECONDS
    mkdir -p "$work/$cmd"
    (
      cd "$work/$cmd"
      printf 'module ezctl.local/build/%s\n\ngo 1.26\n\nrequire %s v%s\n' "$cmd" "$mod" "$v" >go.mod
      rm -f go.sum
      go build -trimpath -ldflags "$ld" -o "$out/$cmd" "$mod"
    )
    log "  $cmd: $((SECONDS - t)) s"
  done
  # etcd prints "etcd Version: 3.6.x", the other two "... version: 3.6.x".
  "$out/etcd" --version | grep -x "etcd Version: $v" >/dev/null || die "etcd does not report $v"
  "$out/etcdctl" version | grep "version: $v" >/dev/null || die "etcdctl does not report $v"
  "$out/etcdutl" version | grep "version: $v" >/dev/null || die "etcdutl does not report $v"
}

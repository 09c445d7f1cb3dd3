# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipe for scripts/build-components.sh (sourced): containerd, its runc shim
# and ctr, static (CGO_ENABLED=0, so no libc at all on the hosts).
# - The only cgo user is the btrfs snapshotter (its files are `cgo && !no_btrfs`);
#   no_btrfs says so explicitly. The overlayfs and native snapshotters are pure Go.
# - urfave_cli_no_docs is what upstream's Makefile always adds; the shim also
#   gets no_grpc (it speaks ttrpc only), as upstream builds it.
# - Upstream stamps version.Version from `git describe` (v2.4.2), Revision from
#   the commit (not in a module zip) and Package; `containerd --version` prints
#   all three.
build_containerd() {
  local v=$1 pkg=github.com/containerd/containerd/v2
  local ld="-s -w -X $pkg/version.Version=v$v -X $pkg/version.Revision=module-v$v -X $pkg/version.Package=$pkg"
  local tags="urfave_cli_no_docs no_btrfs"
  (
    cd "$work"
    printf 'module ezctl.local/build/containerd\n\ngo 1.26\n\nrequire %s v%s\n' "$pkg" "$v" >go.mod
    rm -f go.sum
    local cmd t
    for cmd in containerd ctr containerd-shim-runc-v2; do
      t=$SECONDS
      local cmd_tags=$tags
      [ "$cmd" = containerd-shim-runc-v2 ] && cmd_tags="$tags no_grpc"
      go build -trimpath -tags "$cmd_tags" -ldflags "$ld" -o "$out/$cmd" "$pkg/cmd/$cmd"
      log "  $cmd: $((SECONDS - t)) s"
    done
  )
  "$out/containerd" --version | grep " v$v " >/dev/null || die "containerd does not report v$v"
  "$out/ctr" --version | grep "v$v" >/dev/null || die "ctr does not report v$v"
  "$out/containerd-shim-runc-v2" -v | grep "v$v" >/dev/null || die "containerd-shim-runc-v2 does not report v$v"
  # Static: a host needs no particular libc (no NEEDED entry in its dynamic section).
  ! readelf -d "$out/containerd" 2>/dev/null | grep NEEDED >/dev/null || die "containerd is dynamically linked"
}

# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipe for scripts/build-components.sh (sourced): runc, static.
# Why build it: containerd's docs/RUNC.md recommends a runc equal to or newer
# than the one its CI uses (script/setup/runc-version: v1.5.2 for 2.4.2);
# Debian 12 ships 1.1.5, last updated in Feb 2024 (CVE-2024-21626). 1.1.5 does
# start plain containers under containerd 2.4.2 (seen with ctr run), but it is
# below what containerd supports and misses later runc security fixes.
# - runc needs cgo (libcontainer/nsenter is C that runs before the Go runtime)
#   and, with the `seccomp` tag, libseccomp: Debian's libseccomp-dev provides
#   the static archive (scripts/install-deps.sh installs it).
# - Upstream's default tags also hold `libpathrs`, a Rust C library Debian 12
#   does not package; without the tag runc uses its pure-Go path-safety code,
#   which is what upstream's `RUNC_BUILDTAGS=-libpathrs` builds too.
# - Static PIE with osusergo/netgo, as upstream's `make static`.
# - The version comes from the module's embedded VERSION file; only the commit
#   is stamped (no commit in a module zip).
build_runc() {
  local v=$1 mod=github.com/opencontainers/runc
  [ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ] || [ -n "$(find /usr/lib -name libseccomp.a -print -quit)" ] \
    || die "runc needs libseccomp-dev (scripts/install-deps.sh installs it)"
  (
    cd "$work"
    printf 'module ezctl.local/build/runc\n\ngo 1.26\n\nrequire %s v%s\n' "$mod" "$v" >go.mod
    rm -f go.sum
    CGO_ENABLED=1 go build -trimpath -buildmode=pie -tags "seccomp urfave_cli_no_docs netgo osusergo" \
      -ldflags "-s -w -X main.gitCommit=module-v$v -linkmode external -extldflags -static-pie" \
      -o "$out/runc" "$mod"
  )
  "$out/runc" --version | grep -x "runc version $v" >/dev/null || die "runc does not report $v"
  "$out/runc" --version | grep "^spec: " >/dev/null || die "runc does not report its OCI spec version"
  "$out/runc" features | grep '"seccomp"' >/dev/null || die "runc was built without seccomp"
  ! readelf -d "$out/runc" 2>/dev/null | grep NEEDED >/dev/null || die "runc is dynamically linked"
}

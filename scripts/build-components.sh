#!/usr/bin/env bash
# Build the upstream components the lab and the demo run, from their official
# Go modules (served by the Go module proxy), into a cache outside the clone:
#
#   /var/cache/ezctl-build/<component>/<version>/      binaries (and images)
#   /var/cache/ezctl-build/go/{mod,build}              Go module and build caches
#
# Nothing upstream is copied into this repository: each build is a small
# wrapper module generated here that *requires* the upstream module at a
# pinned version. Idempotent: a component whose stamp matches its recipe is
# not rebuilt. Prints what it built and how long that took.
#
#   scripts/build-components.sh                  everything bin/versions.toml pins
#   scripts/build-components.sh kubernetes 1.37.2
#   scripts/build-components.sh --print-dir kubernetes 1.37.2
#
# Versions come from bin/versions.toml ([build] table) unless given.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

CACHE=${EZCTL_BUILD_CACHE:-/var/cache/ezctl-build}
export GOMODCACHE=$CACHE/go/mod
export GOCACHE=$CACHE/go/build
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export CGO_ENABLED=0
# Two cores and a few GB per linker: one package build at a time keeps the
# peak memory of the big kube binaries well under the machine's.
export GOMAXPROCS=${GOMAXPROCS:-2}

log() { printf 'build-components: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# toml_get TABLE KEY: a string value from bin/versions.toml (flat tables only).
toml_get() {
  awk -v t="[$1]" -v k="$2" '
    /^\[/ { in_t = ($0 == t); next }
    in_t && $1 == k { sub(/^[^=]*=[ \t]*"/, ""); sub(/".*$/, ""); print; exit }
  ' "$repo/bin/versions.toml"
}

# A component is rebuilt when its recipe changes: the stamp holds the hash of
# the function that builds it plus its version.
stamp_of() { # stamp_of FUNC VERSION
  { declare -f "$1"; echo "$2"; go version; } | sha256sum | cut -c1-16
}

# run_build NAME VERSION FUNC: FUNC builds into $out (a temp dir) and the dir
# is moved into place only when it succeeded.
run_build() {
  local name=$1 version=$2 func=$3
  local dir=$CACHE/$name/$version stamp
  stamp=$(stamp_of "$func" "$version")
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
    log "$name $version: up to date in $dir"
    return 0
  fi
  local start=$SECONDS
  log "$name $version: building (this can take a while on a cold cache)"
  out=$CACHE/$name/.$version.tmp
  rm -rf "$out" && mkdir -p "$out"
  work=$CACHE/src/$name-$version
  mkdir -p "$work"
  "$func" "$version"
  echo "$stamp" >"$out/.stamp"
  rm -rf "$dir" && mv "$out" "$dir"
  log "$name $version: built in $((SECONDS - start)) s -> $dir"
}

# One file per component in scripts/build/, each defining build_<component>
# VERSION, which builds into $out from the wrapper module in $work.
for recipe in "$repo"/scripts/build/*.sh; do
  # shellcheck source=/dev/null
  . "$recipe"
done

main() {
  local print_dir=0
  if [ "${1:-}" = --print-dir ]; then print_dir=1; shift; fi
  mkdir -p "$CACHE"
  if [ $# -ge 1 ]; then
    local comp=$1 ver=${2:-}
    [ -n "$ver" ] || die "usage: build-components.sh [--print-dir] COMPONENT VERSION"
    if [ $print_dir = 1 ]; then echo "$CACHE/$comp/$ver"; return; fi
    declare -F "build_${comp//-/_}" >/dev/null || die "unknown component $comp"
    run_build "$comp" "$ver" "build_${comp//-/_}"
    return
  fi
  die "no component given"
}

main "$@"

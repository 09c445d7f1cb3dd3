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
#   scripts/build-components.sh conformance 1.37.2   the e2e suite (scripts/build/conformance.sh)
#   scripts/build-components.sh image coredns [REF]   one image (REF: name:tag)
#   scripts/build-components.sh --available calico 3.28.5   can it be built here?
#   scripts/build-components.sh --print-dir image coredns [REF]
#
# Versions come from bin/versions.toml ([build] table) unless given; image
# names from its [build.images] table. Images are docker-archive tars made by
# `ezlab image build` (crates/lab/src/image.rs):
#
#   /var/cache/ezctl-build/images/<name>/<tag>/image.tar
#
# With no arguments, one line per component on stdout: what, version, what
# happened (built / up to date) and the seconds it took.
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

# Components the no-argument run builds, in this order (binaries first: the
# images are made from them). Each needs a `[build]` version.
COMPONENTS=(etcd containerd runc cni-plugins pause coredns kubernetes)
IMAGES=(pause coredns busybox)

# What a build depends on besides its recipe and version (run_build's stamp
# covers only those): a change here rebuilds it. Prints one line per input.
inputs_of() { # inputs_of NAME
  case $1 in
    pause) echo "k8s.io/kubernetes v$PAUSE_K8S_VERSION" ;;
    images/*)
      echo "ref $IMAGE_REF"
      sha256sum "$EZLAB" | cut -c1-64
      declare -f image_base | sha256sum | cut -c1-64
      [ -z "${IMAGE_SRC:-}" ] || cat "$IMAGE_SRC/.stamp"
      [ "$1" != images/busybox ] || echo "busybox-static $BUSYBOX_DEB_VERSION"
      ;;
    # A recipe may say what else its build reads: inputs_<component>.
    *) ! declare -F "inputs_${1//-/_}" >/dev/null || "inputs_${1//-/_}" ;;
  esac
}

# ensure NAME VERSION FUNC: run_build under a per-build lock, rebuilding when
# inputs_of changed; prints the one summary line.
ensure() {
  local name=$1 version=$2 func=$3
  local dir=$CACHE/$name/$version inputs start status
  mkdir -p "$CACHE/$name"
  # Two runs of the same build would share (and delete) one temp dir.
  exec {lock}>"$CACHE/$name/.$version.lock"
  flock -n "$lock" || { log "$name $version: another build holds the lock, waiting"; flock "$lock"; }
  inputs=$(inputs_of "$name")
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.inputs" 2>/dev/null)" != "$inputs" ]; then
    log "$name $version: inputs changed, rebuilding"
    rm -f "$dir/.stamp"
  fi
  start=$(date +%s.%N)
  status=built
  [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$(stamp_of "$func" "$version")" ] && status="up to date"
  run_build "$name" "$version" "$func"
  printf '%s\n' "$inputs" >"$dir/.inputs"
  exec {lock}>&-
  printf '%-18s %-24s %-10s %6.1f s\n' "$name" "$version" "$status" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
}

need_version() { # need_version COMPONENT: its [build] version, or die
  local v
  v=$(toml_get build "$1")
  [ -n "$v" ] || die "bin/versions.toml has no [build] $1 version"
  echo "$v"
}

# Environment the builds that use other builds read.
setup_inputs() {
  PAUSE_K8S_VERSION=${PAUSE_K8S_VERSION:-$(need_version kubernetes)}
  export PAUSE_K8S_VERSION
}

# The ezlab binary that writes image archives: $EZLAB, else this checkout's
# debug build (cargo is quick when the tests already built it).
setup_ezlab() {
  if [ -z "${EZLAB:-}" ]; then
    cargo build -q -p ez-lab --bin ezlab || die "cannot build ezlab"
    local target=${CARGO_TARGET_DIR:-target}
    case $target in /*) ;; *) target=$repo/$target ;; esac
    EZLAB=$target/debug/ezlab
  fi
  [ -x "$EZLAB" ] || die "no ezlab binary at $EZLAB"
  export EZLAB
}

# image_plan NAME [REF]: sets IMAGE_REF, IMAGE_TAG, IMAGE_SRC and the
# version-like part of the image's directory.
image_plan() {
  local name=$1
  IMAGE_REF=${2:-$(toml_get build.images "$name")}
  [ -n "$IMAGE_REF" ] || die "bin/versions.toml has no [build.images] $name"
  IMAGE_TAG=${IMAGE_REF##*:}
  case $name in
    pause) IMAGE_SRC=$CACHE/pause/$(need_version pause) ;;
    coredns) IMAGE_SRC=$CACHE/coredns/$(need_version coredns) ;;
    busybox) IMAGE_SRC='' BUSYBOX_DEB_VERSION=$(need_version busybox-static) ;;
    *) die "unknown image $name (known: ${IMAGES[*]})" ;;
  esac
  export IMAGE_REF IMAGE_TAG IMAGE_SRC BUSYBOX_DEB_VERSION
}

build_image() { # build_image NAME [REF]
  local name=$1
  image_plan "$@"
  if [ -n "$IMAGE_SRC" ] && [ ! -f "$IMAGE_SRC/.stamp" ]; then
    die "image $name needs $IMAGE_SRC: build its component first"
  fi
  ensure "images/$name" "$IMAGE_TAG" "build_image_${name//-/_}"
}

main() {
  local print_dir=0
  if [ "${1:-}" = --print-dir ]; then print_dir=1; shift; fi
  mkdir -p "$CACHE"
  if [ "${1:-}" = --available ]; then
    # --available COMPONENT VERSION: exit 0 when it can be built here (a
    # recipe may say no, e.g. calico without its api tree), else say why.
    local fn="available_${2//-/_}"
    declare -F "$fn" >/dev/null || return 0
    "$fn" "${3:?usage: build-components.sh --available COMPONENT VERSION}"
    return
  fi
  if [ "${1:-}" = image ]; then
    [ $# -ge 2 ] || die "usage: build-components.sh [--print-dir] image NAME [REF]"
    shift
    if [ $print_dir = 1 ]; then
      image_plan "$@"
      echo "$CACHE/images/$1/$IMAGE_TAG"
      return
    fi
    image_plan "$@" # refuses an unknown image before building ezlab
    setup_inputs
    setup_ezlab
    build_image "$@"
    return
  fi
  if [ $# -ge 1 ]; then
    local comp=$1 ver=${2:-}
    [ -n "$ver" ] || die "usage: build-components.sh [--print-dir] COMPONENT VERSION"
    if [ $print_dir = 1 ]; then echo "$CACHE/$comp/$ver"; return; fi
    declare -F "build_${comp//-/_}" >/dev/null || die "unknown component $comp"
    setup_inputs
    # A recipe may need other builds first (ezlab, a component): prepare_<component>.
    ! declare -F "prepare_${comp//-/_}" >/dev/null || "prepare_${comp//-/_}"
    ensure "$comp" "$ver" "build_${comp//-/_}"
    return
  fi
  [ $print_dir = 0 ] || die "usage: build-components.sh --print-dir COMPONENT VERSION"
  local total=$SECONDS c
  setup_inputs
  for c in "${COMPONENTS[@]}"; do
    ensure "$c" "$(need_version "$c")" "build_${c//-/_}"
  done
  setup_ezlab
  for c in "${IMAGES[@]}"; do
    build_image "$c"
  done
  log "all components ready in $((SECONDS - total)) s"
}

main "$@"

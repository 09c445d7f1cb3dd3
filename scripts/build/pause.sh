# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipe for scripts/build-components.sh (sourced): the pod sandbox's pause
# program, a static C binary. Its source ships in the k8s.io/kubernetes module
# (build/pause/linux/pause.c); VERSION is the pause tag, which that module's
# build/pause/Makefile names (TAG ?= ...). The kubernetes module version to
# take it from is $PAUSE_K8S_VERSION (build-components.sh sets it from
# bin/versions.toml and counts it in this build's inputs); a module whose
# Makefile names another tag is refused.
build_pause() {
  local v=$1 k=${PAUSE_K8S_VERSION:?PAUSE_K8S_VERSION (kubernetes module version) is not set}
  local dir
  dir=$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$k" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -f "$dir/build/pause/linux/pause.c" ] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@v$k"
  local tag
  tag=$(sed -n 's/^TAG ?= *//p' "$dir/build/pause/Makefile")
  [ "$tag" = "$v" ] || die "k8s.io/kubernetes@v$k builds pause $tag, not $v"
  # Upstream: -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV), REV being
  # the kubernetes tree's git describe; here the module version stands for it.
  gcc -Os -Wall -Werror -static -DVERSION="v$v-v$k" -o "$out/pause" "$dir/build/pause/linux/pause.c"
  strip "$out/pause"
  "$out/pause" -v | grep -x "pause.c v$v-v$k" >/dev/null || die "pause does not report v$v"
  ! readelf -d "$out/pause" 2>/dev/null | grep NEEDED >/dev/null || die "pause is dynamically linked"
}

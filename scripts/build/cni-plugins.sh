# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipe for scripts/build-components.sh (sourced): the reference CNI plugins
# (github.com/containernetworking/plugins), every Linux one, static.
# The version string each plugin prints ("CNI bridge plugin v1.10.0") is
# stamped at link time like upstream's release builds do.
# There is no vxlan plugin here (vxlan is the network add-on's job), and no
# flannel meta plugin since v1.0 (it moved to flannel's own repository, not
# served by the module proxy); only v0.8.x/v0.9.x of this module still carry one.
build_cni_plugins() {
  local v=$1 mod=github.com/containernetworking/plugins
  local plugins="main/bridge main/ptp main/loopback main/host-device main/ipvlan main/macvlan
    main/vlan main/dummy main/tap ipam/host-local ipam/static ipam/dhcp
    meta/portmap meta/bandwidth meta/tuning meta/firewall meta/sbr meta/vrf"
  (
    cd "$work"
    printf 'module ezctl.local/build/cni-plugins\n\ngo 1.26\n\nrequire %s v%s\n' "$mod" "$v" >go.mod
    rm -f go.sum
    local p pkgs=()
    for p in $plugins; do pkgs+=("$mod/plugins/$p"); done
    # One go build for all: with -o DIR/ each main package lands as DIR/<name>.
    go build -trimpath -ldflags "-s -w -X $mod/pkg/utils/buildversion.BuildVersion=v$v" -o "$out/" "${pkgs[@]}"
  )
  local p
  for p in $plugins; do
    [ -x "$out/${p#*/}" ] || die "cni plugin ${p#*/} was not built"
  done
  # A plugin with no CNI_COMMAND prints its "about" line with the version.
  "$out/bridge" 2>&1 | grep "CNI bridge plugin v$v" >/dev/null || die "bridge does not report v$v"
}

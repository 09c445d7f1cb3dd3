# shellcheck shell=bash
# Recipe for scripts/build-components.sh (sourced): flannel (kubeasz's
# CLUSTER_NETWORK: flannel): flanneld and install-conf from
# github.com/flannel-io/flannel, the `flannel` CNI plugin, their two images as
# docker-archive tars, and upstream's kube-flannel.yml.
#
# The CNI plugin: github.com/flannel-io/cni-plugin is not served by the Go
# proxy. Its code lived in github.com/containernetworking/plugins as
# plugins/meta/flannel until v0.9.1 (removed in v1.0.0), which the proxy
# serves: that is the plugin built here. It speaks CNI spec versions up to
# 0.4.0, so the CNI config kube-flannel.yml installs must say
# "cniVersion": "0.4.0" (upstream's says 1.0.0): see docs/real-kubernetes.md.
#
# Uses the netimg_* helpers defined in calico.sh (every recipe is sourced
# before any build runs); bump helpers_rev when they change.
#
# Layout of $out:
#   bin/                      flanneld, install-conf, flannel (CNI plugin)
#   images/<name>.tar|.ref|.rootfs/   as for calico
#   manifests/kube-flannel.yml        upstream's, unmodified
#   SOURCE
FLANNEL_CNI_PLUGIN_MODULE_VERSION=v0.9.1

# flannel_tencentvpc_stub DIR: flanneld links every backend, and its
# tencentvpc backend imports the Tencent Cloud VPC SDK, whose module
# (github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc) the Go proxy
# refuses to serve. This writes a module of that path with only the API
# surface the backend calls, every call failing: Backend "tencent-vpc" then
# fails to register its routes, and every other backend is untouched. Our
# own code, written from flannel's call sites (pkg/backend/tencentvpc).
flannel_tencentvpc_stub() {
  local dir=$1
  mkdir -p "$dir/v20170312"
  printf 'module github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc\n\ngo 1.21\n' >"$dir/go.mod"
  cat >"$dir/v20170312/stub.go" <<'GO'
// Package v20170312 stands in for the Tencent Cloud VPC SDK, which the Go
// module proxy here does not serve. Every call fails.
package v20170312

import "errors"

var errNotBuilt = errors.New("tencent-vpc backend: Tencent Cloud VPC API not built into this flanneld")

type Client struct{}

func NewClientWithSecretId(secretID, secretKey, region string) (*Client, error) {
	return nil, errNotBuilt
}

type Filter struct {
	Name   *string
	Values []*string
}

type Route struct {
	DestinationCidrBlock *string
	GatewayType          *string
	GatewayId            *string
	RouteId              *uint64
	RouteType            *string
	Enabled              *bool
}

type RouteTable struct {
	RouteTableId *string
	RouteSet     []*Route
}

type DescribeRouteTablesRequest struct{ Filters []*Filter }

type DescribeRouteTablesResponseParams struct{ RouteTableSet []*RouteTable }

type DescribeRouteTablesResponse struct {
	Response *DescribeRouteTablesResponseParams
}

type RoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

type DeleteRoutesRequest = RoutesRequest
type CreateRoutesRequest = RoutesRequest

type RoutesResponse struct{}

func NewDescribeRouteTablesRequest() *DescribeRouteTablesRequest { return &DescribeRouteTablesRequest{} }
func NewDeleteRoutesRequest() *DeleteRoutesRequest               { return &RoutesRequest{} }
func NewCreateRoutesRequest() *CreateRoutesRequest               { return &RoutesRequest{} }

func (*Client) DescribeRouteTables(*DescribeRouteTablesRequest) (*DescribeRouteTablesResponse, error) {
	return nil, errNotBuilt
}
func (*Client) DeleteRoutes(*DeleteRoutesRequest) (*RoutesResponse, error) { return nil, errNotBuilt }
func (*Client) CreateRoutes(*CreateRoutesRequest) (*RoutesResponse, error) { return nil, errNotBuilt }
GO
}

build_flannel() {
  local v=$1 helpers_rev=3 cnv=$FLANNEL_CNI_PLUGIN_MODULE_VERSION
  local registry=${FLANNEL_IMAGE_REGISTRY:-docker.io}
  : "$helpers_rev"
  (
    cd "$work" || exit 1
    local mod
    mod=$(go mod download -json "github.com/flannel-io/flannel@v$v" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    [ -f "$mod/go.mod" ] || die "flannel: module github.com/flannel-io/flannel@v$v not downloaded"
    # flannel's go.mod has no replace lines: the wrapper only swaps in the
    # VPC SDK stand-in (see flannel_tencentvpc_stub).
    mkdir -p flanneld cni-plugin "$out/bin"
    rm -rf flanneld/tencentvpc-stub
    flannel_tencentvpc_stub "$work/flanneld/tencentvpc-stub"
    {
      echo "module ezctl.local/build/flannel"
      echo
      sed -n 's/^go \(.*\)/go \1/p' "$mod/go.mod" | head -1
      echo
      echo "require github.com/flannel-io/flannel v$v"
      echo
      echo "replace github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc => ./tencentvpc-stub"
    } >flanneld/go.mod
    rm -f flanneld/go.sum
    if ! command -v gcc >/dev/null || [ ! -f /usr/lib/x86_64-linux-gnu/libc.a ]; then
      die "flannel: flanneld needs cgo linked statically: apt-get install gcc libc6-dev"
    fi
    local t=$SECONDS
    # The udp backend is cgo on amd64 (C packet proxy): cgo on, linked
    # statically as upstream does, with Go's own resolver and user lookup
    # so the static binary calls no glibc NSS code.
    (cd flanneld && CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
      -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=v$v -extldflags -static" \
      -o "$out/bin/flanneld" github.com/flannel-io/flannel)
    (cd flanneld && go build -trimpath -ldflags "-s -w" -o "$out/bin/install-conf" github.com/flannel-io/flannel/cmd/install_conf)
    log "  flanneld: $((SECONDS - t)) s"
    local said
    said=$("$out/bin/flanneld" --version 2>&1) || true  # whole output first: no SIGPIPE under pipefail
    grep -q "v$v" <<<"$said" || die "flanneld --version does not report v$v: $said"
    ! ldd "$out/bin/flanneld" >/dev/null 2>&1 || die "flanneld is not static"

    # The CNI plugin, in its own wrapper: its 2021 dependency set must not be
    # raised to flannel's (MVS would), nor flannel's lowered.
    {
      echo "module ezctl.local/build/flannel-cni-plugin"
      echo
      echo "go 1.14"
      echo
      echo "require github.com/containernetworking/plugins $cnv"
    } >cni-plugin/go.mod
    rm -f cni-plugin/go.sum
    t=$SECONDS
    (cd cni-plugin && go build -trimpath -ldflags "-s -w" -o "$out/bin/flannel" github.com/containernetworking/plugins/plugins/meta/flannel)
    log "  flannel CNI plugin ($cnv): $((SECONDS - t)) s"
    # A CNI plugin answers VERSION with the spec versions it supports.
    said=$(CNI_COMMAND=VERSION "$out/bin/flannel" </dev/null) || true
    grep -q '"0.4.0"' <<<"$said" ||
      die "flannel CNI plugin does not answer VERSION with 0.4.0: $said"

    # flannel image: flanneld needs iptables (masquerade, forward rules),
    # nft for EnableNFTables, ip for debugging parity with upstream.
    local img=$out/images root
    mkdir -p "$img"
    root=$img/flannel.rootfs
    netimg_debian_rootfs "$root" iptables nftables iproute2 dash coreutils grep
    netimg_iptables_switch "$root"
    mkdir -p "$root/opt/bin" "$root/run/flannel" "$root/etc/kube-flannel" "$root/licenses"
    install -m 0755 "$out/bin/flanneld" "$out/bin/install-conf" "$root/opt/bin/"
    cp "$mod/LICENSE" "$root/licenses/LICENSE"
    local c
    for c in "iptables-legacy-save --version" "iptables-nft-save --version" "nft --version" \
      "ip -V" "sh -c true" "/opt/bin/flanneld --version" "/opt/bin/install-conf /licenses/LICENSE /tmp/x"; do
      # shellcheck disable=SC2086
      netimg_check_runs "$root" $c
    done
    rm -f "$root/tmp/x"
    case $(chroot "$root" iptables-switch) in nft | legacy) ;; *) die "iptables-switch picks no backend" ;; esac
    netimg_pack "$registry/flannel/flannel:v$v" "$root" "$img/flannel.tar" \
      --env PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --entrypoint /opt/bin/flanneld

    # flannel-cni-plugin image: kube-flannel.yml's init container runs
    # `cp -f /flannel /opt/cni/bin/flannel`, so a static busybox supplies cp.
    root=$img/flannel-cni-plugin.rootfs
    netimg_debian_rootfs "$root" busybox-static
    local a
    for a in sh cp ls cat; do ln -sf busybox "$root/usr/bin/$a"; done
    install -m 0755 "$out/bin/flannel" "$root/flannel"
    netimg_check_runs "$root" cp -f /flannel /tmp/flannel
    rm -f "$root/tmp/flannel"
    netimg_pack "$registry/flannel/flannel-cni-plugin:$cnv" "$root" "$img/flannel-cni-plugin.tar" \
      --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/sh

    mkdir -p "$out/manifests"
    install -m 0644 "$mod/Documentation/kube-flannel.yml" "$out/manifests/"
    grep -q "image: ghcr.io/flannel-io/flannel:v$v" "$out/manifests/kube-flannel.yml" ||
      die "kube-flannel.yml does not name flannel v$v"
    {
      echo "flannel v$v"
      echo "module github.com/flannel-io/flannel@v$v (flanneld: cgo, static)"
      echo "CNI plugin: github.com/containernetworking/plugins@$cnv plugins/meta/flannel (CNI spec <= 0.4.0)"
      echo "built with $(go version | cut -d' ' -f3)"
      echo "flannel userland: Debian $(cat /etc/debian_version) packages: $(tr '\n' ' ' <"$img/flannel.rootfs.packages")"
    } >"$out/SOURCE"
    du -sh "$img"/*.tar | sed 's/^/  /' >&2
  )
}

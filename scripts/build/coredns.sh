# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipe for scripts/build-components.sh (sourced): CoreDNS with the plugins
# of its own plugin.cfg (the generated list is committed upstream). Its go.mod
# has no replace directives and `package main` is the module root, so the
# ordinary `go install module@version` builds it with CoreDNS's own go.sum.
# Upstream builds it with CGO_ENABLED=0 and stamps coremain.GitCommit; the
# version it prints is a literal in coremain.
build_coredns() {
  local v=$1 mod=github.com/coredns/coredns
  # `go install pkg@version` refuses -mod=mod: drop it from GOFLAGS here.
  (cd "$work" && GOFLAGS=-buildvcs=false GOBIN=$out go install -trimpath \
    -ldflags "-s -w -X $mod/coremain.GitCommit=module-v$v" "$mod@v$v")
  "$out/coredns" -version | grep -x "CoreDNS-$v" >/dev/null || die "coredns does not report $v"
  ! readelf -d "$out/coredns" 2>/dev/null | grep NEEDED >/dev/null || die "coredns is dynamically linked"
}

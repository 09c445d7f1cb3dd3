# shellcheck shell=bash
# Recipe for scripts/build-components.sh (sourced): Calico for the Kubernetes
# datastore in VXLAN mode (no BIRD): the calico-node, CNI plugin and
# kube-controllers binaries, their images as docker-archive tars, and
# upstream's manifests, all from the github.com/projectcalico/calico module.
#
# Also defines the helpers the network recipes share (netimg_*): a userland
# from Debian packages and a docker-archive packer. run_build's stamp hashes
# only build_<component>, so a change to a helper must bump `helpers_rev` in
# build_calico and build_flannel to rebuild.
#
# Layout of $out:
#   bin/                      calico-node, calico (= calico-ipam, install), kube-controllers,
#                             check-status, mountns, and the CNI plugins the calico/cni image carries
#   images/<name>.tar         docker-archive (ctr -n k8s.io images import FILE)
#   images/<name>.ref         the image reference inside that archive
#   images/<name>.rootfs/     the tree each archive holds (kept for inspection and re-packing)
#   manifests/                upstream's calico-vxlan.yaml and calico.yaml, unmodified
#   SOURCE                    what was built from what

# The Go module proxy serves github.com/projectcalico/calico at one version
# only: a pseudo-version for commit a0db560f0520 on the release-v3.28 branch
# (tag v3.28.5 plus a Makefile-only change; its manifests name v3.28.5).
# Tagged versions (v3.x without /v3) and other commits are refused.
calico_module_of() { # calico_module_of VERSION -> "MODULE_VERSION COMMIT"
  case $1 in
    3.28.5) echo "v1.11.0-cni-plugin.0.20250813170300-a0db560f0520 a0db560f0520abf7c4fed6a6043a7c4ae80f20a4" ;;
    *) return 1 ;;
  esac
}

# available_calico VERSION: whether calico VERSION can be built here (or is
# built already): its api tree is cached, or a git clone has the commit.
# Prints why not.
available_calico() {
  local modver commit
  [ -f "$CACHE/calico/$1/.stamp" ] && return 0
  read -r modver commit <<<"$(calico_module_of "$1")" || { echo "no served module version of calico $1 is known"; return 1; }
  : "$modver"
  [ -f "$CACHE/src/calico-api-$commit/go.mod" ] && return 0
  git -C "${CALICO_GIT_DIR:-/work/.mirror/projectcalico+calico/repo}" cat-file -e "$commit^{commit}" 2>/dev/null && return 0
  echo "calico's api module (github.com/projectcalico/api) is not served by the Go proxy; set CALICO_GIT_DIR to a git clone of projectcalico/calico that has commit $commit"
  return 1
}

# calico_api_dir COMMIT: a directory holding calico's `api` module
# (github.com/projectcalico/api) at COMMIT. The calico module's zip leaves
# api/ out (it is a nested module) and the proxy serves no version of
# github.com/projectcalico/api, so the tree comes from a git clone of the
# calico repository ($CALICO_GIT_DIR, a bare or normal git dir that has
# COMMIT). The extracted tree is kept under $CACHE/src, outside the clone,
# keyed by commit; git checks the objects' hashes.
calico_api_dir() {
  local commit=$1 dir=$CACHE/src/calico-api-$1
  if [ ! -f "$dir/go.mod" ]; then
    local git=${CALICO_GIT_DIR:-/work/.mirror/projectcalico+calico/repo}
    git -C "$git" cat-file -e "$commit^{commit}" 2>/dev/null ||
      die "calico: the api module (github.com/projectcalico/api) is not served by the Go proxy and not in the calico module zip; set CALICO_GIT_DIR to a git clone of projectcalico/calico that has commit $commit"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    git -C "$git" archive "$commit" api | tar -x -C "$dir.tmp"
    rm -rf "$dir" && mv "$dir.tmp/api" "$dir" && rmdir "$dir.tmp"
  fi
  grep -qx 'module github.com/projectcalico/api' "$dir/go.mod" || die "calico: $dir is not github.com/projectcalico/api"
  echo "$dir"
}

# netimg_in_cache DIR: the image helpers write, link and delete below DIR as
# root; refuse anything that is not a directory inside the build cache.
netimg_in_cache() {
  case $1 in
    "$CACHE"/?*) case $1 in *..*) die "image tree '$1' contains '..'" ;; esac ;;
    *) die "image tree '$1' is not inside $CACHE" ;;
  esac
}

# netimg_debian_rootfs DIR PKG...: a merged-/usr userland made of Debian
# packages (this machine's apt sources) and their library dependencies,
# unpacked with dpkg-deb; maintainer scripts do not run, so what they would
# do (alternatives, /bin/sh) is done by the caller. Only the named packages
# and `lib*` dependencies are taken: the rest of the closure is packaging
# machinery (dpkg, debconf, perl) a container never runs.
netimg_debian_rootfs() {
  local root=$1 debs
  netimg_in_cache "$root"
  shift
  debs=$work/debs
  rm -rf "$debs" && mkdir -p "$debs" "$root"
  local closure keep=() p
  closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "$@" | grep -v '^[ <]' | sort -u) ||
    die "apt-cache depends $* failed (run apt-get update first)"
  for p in $closure; do
    case " $* " in *" $p "*) keep+=("$p"); continue ;; esac
    case $p in
      *perl* | libpam* | libsemanage* | libaudit* | libdebian-installer* | libnewt* | libslang* | libtextwrap* | libelogind*) ;;
      lib* | zlib1g) keep+=("$p") ;;
    esac
  done
  (cd "$debs" && apt-get -o APT::Sandbox::User=root download -q "${keep[@]}" >/dev/null) || die "apt-get download ${keep[*]} failed (apt-get update first?)"
  mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{etc,tmp,var/run,run,proc,sys,dev}
  chmod 1777 "$root/tmp"
  for p in bin sbin lib lib64; do ln -sfn "usr/$p" "$root/$p"; done
  local deb
  for deb in "$debs"/*.deb; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$root"
  done
  # Documentation, headers and glibc's iconv modules (8 MB): nothing in these
  # images reads them.
  rm -rf "${root:?}"/usr/share/{doc,man,info,locale,lintian,bug} "$root"/usr/include "$root"/usr/lib/x86_64-linux-gnu/gconv
  # /bin/sh is made by dash's postinst.
  [ -e "$root/usr/bin/dash" ] && ln -sfn dash "$root/usr/bin/sh"
  # `which` is an alternative debianutils' postinst would register.
  [ -e "$root/usr/bin/which.debianutils" ] && ln -sfn which.debianutils "$root/usr/bin/which"
  # What an installer writes: without /etc/hosts `localhost` goes to DNS
  # (calico-node's readiness probe asks localhost:9099); passwd and group
  # name root and nobody for tools that look users up.
  [ -e "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  [ -e "$root/etc/passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
  [ -e "$root/etc/group" ] || printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  [ -e "$root/etc/nsswitch.conf" ] || printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf '%s\n' "${keep[@]}" >"$root.packages"
}

# netimg_iptables_switch ROOT: iptables, ip6tables and their -save/-restore
# must use the same backend as the host's other writers (kube-proxy, the
# host's own rules). Debian's postinst would pick one with update-alternatives;
# here a small script picks at first use, the way upstream images do: the
# backend that already holds more rules wins, nft when both are empty.
netimg_iptables_switch() {
  local root=$1 n
  netimg_in_cache "$root"
  cat >"$root/usr/sbin/iptables-switch" <<'EOF'
#!/bin/sh
# Points iptables* at xtables-legacy-multi or xtables-nft-multi, whichever
# already holds more rules on this host (nft when neither holds any), then
# runs the command it was called as.
set -e
legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-' || true)
nft=$( (iptables-nft-save; ip6tables-nft-save) 2>/dev/null | grep -c '^-' || true)
mode=nft
[ "${legacy:-0}" -gt "${nft:-0}" ] && mode=legacy
# Called by its own name it only tells its choice.
if [ "$(basename "$0")" = iptables-switch ]; then
  echo "$mode"
  exit 0
fi
for c in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  # rename(2) swaps the link atomically: a concurrent caller sees either.
  ln -sf "xtables-$mode-multi" "/usr/sbin/.$c.$$"
  mv -f "/usr/sbin/.$c.$$" "/usr/sbin/$c"
done
exec "/usr/sbin/$(basename "$0")" "$@"
EOF
  chmod 0755 "$root/usr/sbin/iptables-switch"
  for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf iptables-switch "$root/usr/sbin/$n"
  done
}

# netimg_check_runs ROOT CMD...: run CMD chrooted in ROOT; a missing library
# or interpreter fails the build here instead of in a pod.
netimg_check_runs() {
  local root=$1
  shift
  chroot "$root" "$@" >/dev/null 2>&1 || die "in image tree $root: '$*' does not run: $(chroot "$root" "$@" 2>&1 | tail -2)"
}

# netimg_pack REF ROOTFS TAR [--entrypoint A]... [--cmd A]... [--env K=V]...
#   [--user U] [--workdir W]: a one-layer docker-archive, the format
# `ctr images import` and `skopeo copy docker-archive:` read. The flags are
# those of `ezlab image build`; with NETIMG_PACKER=ezlab and $EZLAB set, that
# command packs instead. Our packer: entries sorted, mtimes at
# SOURCE_DATE_EPOCH (default 0), owners kept numerically (files are root's
# unless a recipe chowned them), hard links kept.
netimg_pack() {
  local ref=$1 rootfs=$2 tarball=$3
  shift 3
  if [ "${NETIMG_PACKER:-}" = ezlab ]; then
    [ -x "${EZLAB:-}" ] || die "NETIMG_PACKER=ezlab but \$EZLAB is not an executable"
    "$EZLAB" image build --root "$rootfs" --tag "$ref" -o "$tarball" "$@"
    echo "$ref" >"${tarball%.tar}.ref"
    return
  fi
  local entry=() cmd=() env=() user="" workdir=""
  while [ $# -gt 0 ]; do
    case $1 in
      --entrypoint) entry+=("$2") ;;
      --cmd) cmd+=("$2") ;;
      --env) env+=("$2") ;;
      --user) user=$2 ;;
      --workdir) workdir=$2 ;;
      *) die "netimg_pack: unknown flag $1" ;;
    esac
    shift 2
  done
  local config="{" d epoch=${SOURCE_DATE_EPOCH:-0}
  [ ${#env[@]} -eq 0 ] || config+="\"Env\":$(netimg_json_list "${env[@]}"),"
  [ ${#entry[@]} -eq 0 ] || config+="\"Entrypoint\":$(netimg_json_list "${entry[@]}"),"
  [ ${#cmd[@]} -eq 0 ] || config+="\"Cmd\":$(netimg_json_list "${cmd[@]}"),"
  [ -z "$user" ] || config+="\"User\":$(netimg_json_list "$user" | sed 's/^\[//; s/\]$//'),"
  [ -z "$workdir" ] || config+="\"WorkingDir\":$(netimg_json_list "$workdir" | sed 's/^\[//; s/\]$//'),"
  config="${config%,}}"
  d=$(mktemp -d)
  (cd "$rootfs" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort >"$d/list")
  tar -C "$rootfs" --no-recursion -T "$d/list" --numeric-owner --mtime="@$epoch" \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -cf "$d/layer.tar"
  local layer cfg created
  layer=$(sha256sum "$d/layer.tar" | cut -c1-64)
  mkdir "$d/$layer" && mv "$d/layer.tar" "$d/$layer/layer.tar"
  created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
  printf '{"architecture":"amd64","os":"linux","created":"%s","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"ezctl scripts/build-components.sh"}]}' \
    "$created" "$config" "$layer" "$created" >"$d/config.json"
  cfg=$(sha256sum "$d/config.json" | cut -c1-64)
  mv "$d/config.json" "$d/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$ref" "$layer" >"$d/manifest.json"
  tar -C "$d" --numeric-owner --owner=0 --group=0 --mtime="@$epoch" --sort=name \
    -cf "$tarball" manifest.json "$cfg.json" "$layer"
  rm -rf "$d"
  echo "$ref" >"${tarball%.tar}.ref"
}

# netimg_json_list STR...: a JSON array of strings (escapes \\ and ").
netimg_json_list() {
  local out="[" x
  for x in "$@"; do
    x=${x//\\/\\\\}
    out+="\"${x//\"/\\\"}\","
  done
  echo "${out%,}]"
}

build_calico() {
  local v=$1 helpers_rev=3 modver commit
  read -r modver commit < <(calico_module_of "$v") ||
    die "calico $v: no served module version known (only 3.28.5: github.com/projectcalico/calico@v1.11.0-cni-plugin.0.20250813170300-a0db560f0520)"
  : "$helpers_rev"
  local registry=${CALICO_IMAGE_REGISTRY:-docker.io}
  (
    cd "$work" || exit 1
    local mod api
    mod=$(go mod download -json "github.com/projectcalico/calico@$modver" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    [ -f "$mod/go.mod" ] || die "calico: module github.com/projectcalico/calico@$modver not downloaded"
    api=$(calico_api_dir "$commit")
    # A relative replace path: the binaries' build info records it, so the
    # same inputs give the same binaries whatever the cache directory is.
    rm -rf api && cp -r "$api" api
    # The wrapper requires calico and repeats its replace lines (ignored for
    # a dependency): the k8s.io staging modules at calico's pinned release,
    # knftables at its pinned commit, and api at the local tree.
    {
      echo "module ezctl.local/build/calico"
      echo
      sed -n 's/^go \(.*\)/go \1/p' "$mod/go.mod" | head -1
      echo
      echo "require github.com/projectcalico/calico $modver"
      echo
      echo "replace github.com/projectcalico/api => ./api"
      awk '/^replace \(/ { r = 1; next } r && /^\)/ { r = 0 } r && /=>/ && $3 !~ /^\./ { print "replace", $1, $2, $3, $4 }' "$mod/go.mod"
    } >go.mod
    rm -f go.sum
    local pkg=github.com/projectcalico/calico date
    date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
    mkdir -p "$out/bin"
    local t=$SECONDS
    # No cgo: felix's libbpf has a stub without it (BPF dataplane off; the
    # iptables dataplane and VXLAN need none of it).
    go build -trimpath -ldflags "-s -w -X $pkg/node/pkg/lifecycle/startup.VERSION=v$v \
      -X $pkg/node/buildinfo.GitVersion=v$v -X $pkg/node/buildinfo.BuildDate=$date \
      -X $pkg/node/buildinfo.GitRevision=$commit" -o "$out/bin/calico-node" "$pkg/node/cmd/calico-node"
    log "  calico-node: $((SECONDS - t)) s"
    t=$SECONDS
    go build -trimpath -ldflags "-s -w" -o "$out/bin/mountns" "$pkg/node/cmd/mountns"
    go build -trimpath -ldflags "-s -w -X main.VERSION=v$v" -o "$out/bin/calico" "$pkg/cni-plugin/cmd/calico"
    go build -trimpath -ldflags "-s -w -X main.VERSION=v$v" -o "$out/bin/install" "$pkg/cni-plugin/cmd/install"
    log "  cni-plugin: $((SECONDS - t)) s"
    t=$SECONDS
    go build -trimpath -ldflags "-s -w -X main.VERSION=v$v" -o "$out/bin/kube-controllers" "$pkg/kube-controllers/cmd/kube-controllers"
    go build -trimpath -ldflags "-s -w" -o "$out/bin/check-status" "$pkg/kube-controllers/cmd/check-status"
    log "  kube-controllers: $((SECONDS - t)) s"
    # The calico/cni image also carries the reference plugins its CNI config
    # chains (portmap, bandwidth) and upstream's other extras, at the version
    # calico's go.mod pins; `install` copies all of /opt/cni/bin to the host.
    t=$SECONDS
    local cn
    for cn in ipam/host-local main/loopback meta/portmap meta/tuning meta/bandwidth; do
      go build -trimpath -ldflags "-s -w" -o "$out/bin/${cn#*/}" "github.com/containernetworking/plugins/plugins/$cn"
    done
    log "  reference CNI plugins: $((SECONDS - t)) s"
    local said
    said=$("$out/bin/calico-node" -v 2>&1) || true  # whole output first: no SIGPIPE under pipefail
    grep -q "v$v" <<<"$said" || die "calico-node -v does not report v$v: $said"

    # calico/node: Debian userland + calico's node/filesystem tree.
    local img=$out/images root
    mkdir -p "$img"
    root=$img/node.rootfs
    netimg_debian_rootfs "$root" iptables ipset iproute2 runit conntrack dash coreutils debianutils procps kmod grep sed findutils
    netimg_iptables_switch "$root"
    # Module zips keep no file modes: the runit services, start_runit and
    # rc.local are scripts.
    # Debian's runit makes /etc/service a link into its own runsvdir tree;
    # calico's services live in a real /etc/service.
    rm -f "${root:?}/etc/service"
    cp -r "$mod/node/filesystem/etc/." "${root:?}/etc/"
    chmod -R u+w,a+rX "${root:?}/etc"
    find "$root/etc/service" -name run -exec chmod 0755 {} +
    chmod 0755 "$root/etc/rc.local"
    install -m 0755 "$mod"/node/filesystem/sbin/* "$root/usr/sbin/"
    install -m 0755 "$out/bin/calico-node" "$root/usr/bin/calico-node"
    install -m 0755 "$out/bin/mountns" "$root/usr/bin/mountns"
    mkdir -p "$root/var/lib/calico" "$root/var/log/calico" "$root/licenses"
    cp "$mod/LICENSE.md" "$root/licenses/LICENSE.md"
    for c in "iptables-legacy-save --version" "iptables-nft-save --version" "ipset version" \
      "ip -V" "runsvdir -V" "sh -c true" "which runsvdir" "conntrack --version" "calico-node -v"; do
      # runsvdir -V prints usage and exits 1: check it is found instead.
      case $c in "runsvdir -V") c="test -x /usr/bin/runsvdir" ;; esac
      # shellcheck disable=SC2086
      netimg_check_runs "$root" $c
    done
    case $(chroot "$root" iptables-switch) in nft | legacy) ;; *) die "iptables-switch picks no backend" ;; esac
    netimg_pack "$registry/calico/node:v$v" "$root" "$img/node.tar" \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env SVDIR=/etc/service/enabled \
      --cmd start_runit

    # calico/cni: static binaries only.
    root=$img/cni.rootfs
    mkdir -p "$root/opt/cni/bin" "$root/tmp" "$root/licenses"
    chmod 1777 "$root/tmp"
    install -m 0755 "$out/bin/calico" "$out/bin/install" "$root/opt/cni/bin/"
    # A hard link, not a symlink: install copies regular files to the host.
    ln "$root/opt/cni/bin/calico" "$root/opt/cni/bin/calico-ipam"
    for cn in host-local loopback portmap tuning bandwidth; do install -m 0755 "$out/bin/$cn" "$root/opt/cni/bin/"; done
    cp "$mod/LICENSE.md" "$root/licenses/LICENSE.md"
    netimg_pack "$registry/calico/cni:v$v" "$root" "$img/cni.tar" \
      --env PATH=/opt/cni/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --workdir /opt/cni/bin --cmd /opt/cni/bin/install

    # calico/kube-controllers: runs as uid 999 and writes its status file.
    root=$img/kube-controllers.rootfs
    mkdir -p "$root/usr/bin" "$root/status" "$root/profiles" "$root/tmp" "$root/licenses"
    chmod 1777 "$root/tmp"
    install -m 0755 "$out/bin/kube-controllers" "$out/bin/check-status" "$root/usr/bin/"
    touch "$root/status/status.json" "$root/profiles/mem.pprof" "$root/profiles/cpu.pprof"
    chown 999 "$root/status/status.json" "$root/profiles/mem.pprof" "$root/profiles/cpu.pprof"
    cp "$mod/LICENSE.md" "$root/licenses/LICENSE.md"
    netimg_pack "$registry/calico/kube-controllers:v$v" "$root" "$img/kube-controllers.tar" \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --user 999 --entrypoint /usr/bin/kube-controllers

    mkdir -p "$out/manifests"
    install -m 0644 "$mod/manifests/calico-vxlan.yaml" "$mod/manifests/calico.yaml" "$out/manifests/"
    grep -q "image: docker.io/calico/node:v$v" "$out/manifests/calico-vxlan.yaml" ||
      die "calico-vxlan.yaml does not name calico/node v$v"
    {
      echo "calico v$v"
      echo "module github.com/projectcalico/calico@$modver (commit $commit)"
      echo "api github.com/projectcalico/api from git commit $commit (not served by the proxy)"
      echo "built with $(go version | cut -d' ' -f3), CGO_ENABLED=0"
      echo "node userland: Debian $(cat /etc/debian_version) packages: $(tr '\n' ' ' <"$img/node.rootfs.packages")"
    } >"$out/SOURCE"
    du -sh "$img"/*.tar | sed 's/^/  /' >&2
  )
}

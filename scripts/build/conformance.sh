# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipe for scripts/build-components.sh (sourced): the upstream conformance
# suite of a Kubernetes release, for scripts/conformance.sh:
#
#   bin/e2e.test  bin/ginkgo  bin/agnhost  bin/sample-apiserver
#   images/<name>.tar  images/<name>.ref   docker-archives (ezlab image build)
#   images.list        <name>.tar <ref> <what it holds>, one line per image
#   repo-list.yaml     KUBE_TEST_REPO_LIST: the suite's registries -> $CONFORMANCE_REGISTRY
#   SOURCE             how each piece was made (modules, Debian package versions)
#
# Everything comes from official Go modules (wrapper modules that *require*
# them, as scripts/build/kubernetes.sh does) and from Debian packages of the
# archive apt uses here (apt-get download, dpkg-deb -x); nothing upstream is
# kept in this repository. The image tags are the ones the built e2e.test
# names (`e2e.test --list-images` under repo-list.yaml), so they follow the
# release; the versions of ginkgo (the one e2e.test links) and of
# sample-apiserver (the release its image tag names) are derived the same way.
#
# build-components.sh runs prepare_conformance first (ezlab, and the lab's
# etcd build, which the etcd image carries) and counts inputs_conformance in
# the build's inputs.

# The registry the test images are named under; repo-list.yaml points the
# suite's promoterE2eRegistry (e2e-test-images/...) and gcEtcdRegistry there.
CONFORMANCE_REGISTRY=registry.ezctl.local

# Debian packages left out of the image trees (and not followed for their
# dependencies): what installs, configures or logs in, which a container of
# the tools below does not run (dpkg, debconf, perl, awk, PAM, ...).
CONFORMANCE_DEB_SKIP='base-files|base-passwd|debconf|cdebconf|debianutils|dpkg|install-info|init-system-helpers|usrmerge|usr-is-merged|tar|gawk|mawk|original-awk|perl|perl-base|perl-modules-[0-9.]+|readline-common|gcc-[0-9]+-base|libpam0g|libpam-.*|libaudit1|libaudit-common|libelogind0|util-linux-extra|sensible-utils|sysvinit-utils|lsb-base|adduser|login|passwd|tzdata'

# The tools upstream's agnhost image has (its base is Alpine: bind-tools,
# curl, netcat-openbsd, iproute2, iperf, bash, util-linux, socat), as Debian
# packages, plus busybox for the rest (wget, ping, ...).
CONFORMANCE_AGNHOST_DEBS=(bash bind9-dnsutils coreutils curl dash findutils grep iperf iproute2 libc-bin netcat-openbsd procps sed socat util-linux)
# glibc-dns-testing: a glibc resolver with dnsutils (upstream: Debian + dnsutils).
CONFORMANCE_GLIBC_DNS_DEBS=(bash bind9-dnsutils coreutils dash grep libc-bin sed)

# prepare_conformance: run by build-components.sh before the build.
prepare_conformance() {
  setup_ezlab
  CONFORMANCE_ETCD_VERSION=$(need_version etcd)
  ensure etcd "$CONFORMANCE_ETCD_VERSION" build_etcd
  CONFORMANCE_ETCD_DIR=$CACHE/etcd/$CONFORMANCE_ETCD_VERSION
  BUSYBOX_DEB_VERSION=$(need_version busybox-static)
  BASH_STATIC_DEB_VERSION=$(need_version bash-static)
  export CONFORMANCE_ETCD_VERSION CONFORMANCE_ETCD_DIR BUSYBOX_DEB_VERSION BASH_STATIC_DEB_VERSION
}

# inputs_conformance: what the build depends on besides build_conformance and
# the version (build-components.sh rebuilds when this output changes).
inputs_conformance() {
  echo "registry $CONFORMANCE_REGISTRY"
  echo "busybox-static $BUSYBOX_DEB_VERSION bash-static $BASH_STATIC_DEB_VERSION"
  echo "etcd $CONFORMANCE_ETCD_VERSION $(cat "$CONFORMANCE_ETCD_DIR/.stamp")"
  sha256sum "$EZLAB" | cut -c1-64
  # The helpers below (the stamp hashes build_conformance alone).
  { declare -f image_base prepare_conformance; declare -p CONFORMANCE_DEB_SKIP CONFORMANCE_AGNHOST_DEBS CONFORMANCE_GLIBC_DNS_DEBS
    local f
    for f in $(compgen -A function conformance_); do declare -f "$f"; done
  } | sha256sum | cut -c1-64
}

# conformance_wrapper DIR NAME MODULE VERSION [STAGING]: DIR/go.mod, a module
# that requires MODULE@VERSION at the go version MODULE's go.mod states. A
# dependency's replace directives are ignored, so the wrapper repeats the
# ones that name a published version, and (with STAGING) replaces each k8s.io
# module required at v0.0.0 (a staging folder upstream) with STAGING.
conformance_wrapper() {
  local dir=$1 name=$2 mod=$3 ver=$4 staging=${5:-} gomod replaces
  mkdir -p "$dir"
  gomod=$(cd "$dir" && go mod download -json "$mod@$ver" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || die "no go.mod for $mod@$ver (Go module proxy?)"
  replaces=$(
    if [ -n "$staging" ]; then
      grep -E '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v sv="$staging" '{ printf "replace %s => %s %s\n", $1, $1, sv }'
    fi
    awk '/^replace \($/ { blk = 1; next } blk && /^\)/ { blk = 0; next }
      { line = $0; sub(/^replace[ \t]+/, "", line) }
      (blk || $1 == "replace") && line ~ /=> [a-z][^ ]* v[^ ]+[ \t]*$/ {
        n = split(line, w, /[ \t]+/); if (w[1] == "") { for (i = 1; i < n; i++) w[i] = w[i + 1]; n-- }
        if (w[2] == "=>") printf "replace %s => %s %s\n", w[1], w[3], w[4]
        else printf "replace %s %s => %s %s\n", w[1], w[2], w[4], w[5]
      }' "$gomod"
  )
  {
    echo "module ezctl.local/build/$name"
    echo
    sed -n 's/^go \(.*\)/go \1/p' "$gomod" | head -1
    echo
    echo "require $mod $ver"
    [ -z "$replaces" ] || printf '\n%s\n' "$replaces"
  } >"$dir/go.mod"
  rm -f "$dir/go.sum"
}

# conformance_closure SKIP PKG...: PKG... and the packages they need
# (Depends, Pre-Depends, recursively; virtual names and packages matching
# the extended regex SKIP, or CONFORMANCE_DEB_SKIP, are not followed).
conformance_closure() {
  local skip="$1|$CONFORMANCE_DEB_SKIP" p deps
  shift
  local -A seen=()
  local level=("$@") next
  # One apt-cache call per level of the dependency tree.
  while [ ${#level[@]} -gt 0 ]; do
    for p in "${level[@]}"; do seen[$p]=1; done
    deps=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "${level[@]}" 2>/dev/null) || die "apt-cache does not know all of: ${level[*]} (apt-get update?)"
    next=()
    while read -r p; do
      [[ $p =~ ^($skip)$ ]] || [ -n "${seen[$p]:-}" ] || next+=("$p")
    done < <(awk '$1 ~ /Depends:$/ && $2 !~ /^</ { sub(/:any$/, "", $2); print $2 }' <<<"$deps" | sort -u)
    level=("${next[@]}")
  done
  [ ${#seen[@]} -gt 0 ] || return 0
  printf '%s\n' "${!seen[@]}" | sort
}

# conformance_debs DIR PKG[=VERSION]...: apt-get download into DIR (apt-get
# update once when the package lists lack one).
conformance_debs() {
  local dir=$1
  shift
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && apt-get download -q "$@" >/dev/null 2>&1) \
    || { apt-get update -q >/dev/null && (cd "$dir" && apt-get download -q "$@" >/dev/null); } \
    || die "apt-get download failed for: $* (apt-get update? are those versions still in the archive?)"
}

# conformance_deb_versions PKG...: name=version of the downloaded .debs, wrapped.
conformance_deb_versions() {
  local p
  for p in "$@"; do
    echo "$p=$(dpkg-deb -f "$(conformance_deb_file "$p")" Version)"
  done | paste -sd' ' | fold -s -w 96 | sed 's/^/    /'
}
conformance_deb_file() { # conformance_deb_file PKG: its downloaded .deb
  local f
  for f in "$work/debs/${1}"_*.deb; do
    [ -f "$f" ] || die "no .deb for $1 in $work/debs"
    echo "$f"
    return
  done
}

# conformance_busybox_tree ROOT: Debian's busybox-static, one link per
# applet at the path it lists (as images.sh's busybox) and one in /bin, with
# sh being bash-static: busybox's sh drops environment names with a '-',
# which a ConfigMap spec sets and reads back. /bin because the suite's
# busybox image has every applet there: the Sysctls spec runs /bin/sysctl,
# which Debian lists as sbin/sysctl. The base of busybox, nonroot, kitten,
# nautilus.
conformance_busybox_tree() {
  local root=$1 applet
  image_base "$root"
  mkdir -p "$root/bin" "$root/root" "$root/home"
  chmod 0700 "$root/root"
  install -m 0755 "$work/x/busybox-static/bin/busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sfn /bin/busybox "$root/$applet"
    [ -e "$root/bin/${applet##*/}" ] || [ -L "$root/bin/${applet##*/}" ] || ln -s busybox "$root/bin/${applet##*/}"
  done
  install -m 0755 "$work/x/bash-static/bin/bash-static" "$root/bin/bash"
  ln -sfn bash "$root/bin/sh"
}

# conformance_debian_tree ROOT BUSYBOX PKG...: the packages PKG... unpacked
# (their /bin, /sbin, /lib, /lib64 merged into /usr, as Debian 12 installs
# them; no documentation, headers or iconv modules), a passwd with root and
# nobody, and with BUSYBOX=1
# a busybox link in /usr/bin for each applet no package provides.
conformance_debian_tree() {
  local root=$1 busybox=$2 p d applet
  shift 2
  umask 022
  rm -rf "$root" && mkdir -p "$root"
  for p in "$@"; do
    dpkg-deb -x "$(conformance_deb_file "$p")" "$root"
  done
  for d in bin sbin lib lib64; do
    if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then
      mkdir -p "$root/usr/$d"
      cp -a "$root/$d/." "$root/usr/$d/"
      rm -rf "${root:?}/$d"
    fi
    mkdir -p "$root/usr/$d"
    ln -sfn "usr/$d" "$root/$d"
  done
  rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug} "$root"/usr/include "$root"/usr/lib/*-linux-gnu/gconv
  # Links Debian's maintainer scripts make (update-alternatives), not in the .debs.
  if [ -e "$root/usr/bin/nc.openbsd" ] && [ ! -e "$root/usr/bin/nc" ]; then ln -s nc.openbsd "$root/usr/bin/nc"; fi
  if [ "$busybox" = 1 ]; then
    install -m 0755 "$work/x/busybox-static/bin/busybox" "$root/usr/bin/busybox"
    for applet in $("$root/usr/bin/busybox" --list); do
      [ -e "$root/usr/bin/$applet" ] || [ -L "$root/usr/bin/$applet" ] \
        || [ -e "$root/usr/sbin/$applet" ] || [ -L "$root/usr/sbin/$applet" ] \
        || ln -s busybox "$root/usr/bin/$applet"
    done
  fi
  mkdir -p "$root"/{dev,proc,sys,run,tmp,root,etc,var/run}
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  printf '%s\n' "root:x:0:0:root:/root:/bin/sh" "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin" >"$root/etc/passwd"
  printf '%s\n' "root:x:0:" "nogroup:x:65534:" >"$root/etc/group"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  printf '%s\n' "passwd: files" "group: files" "hosts: files dns" >"$root/etc/nsswitch.conf"
  chmod 0644 "$root"/etc/{passwd,group,hosts,nsswitch.conf}
}

# conformance_check_libs ROOT PATH...: every shared library the programs
# PATH... (inside ROOT) need, transitively, is in ROOT.
conformance_check_libs() {
  local root=$1 f lib d missing=''
  shift
  local -A seen=()
  local queue=("$@") found
  while [ ${#queue[@]} -gt 0 ]; do
    f=${queue[0]}
    queue=("${queue[@]:1}")
    [ -z "${seen[$f]:-}" ] || continue
    seen[$f]=1
    [ -e "$root/$f" ] || { missing="$missing $f"; continue; }
    for lib in $(readelf -d "$root/$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      found=''
      for d in "$root"/usr/lib/*-linux-gnu "$root/usr/lib"; do
        [ -e "$d/$lib" ] && found=${d#"$root"/} && break
      done
      if [ -n "$found" ]; then queue+=("$found/$lib"); else missing="$missing $lib(for $f)"; fi
    done
  done
  [ -z "$missing" ] || die "$(basename "$root"): missing in the image:$missing"
}

# conformance_image NAME REF ROOT EZLAB-FLAGS...: images/NAME.tar and .ref.
conformance_image() {
  local name=$1 ref=$2 root=$3
  shift 3
  "$EZLAB" image build --root "$root" --tag "$ref" -o "$out/images/$name.tar" "$@" >/dev/null
  echo "$ref" >"$out/images/$name.ref"
}

# conformance_refs NAME: the tags under $CONFORMANCE_REGISTRY of image NAME
# (e2e-test-images/NAME, or etcd) that the suite names, lowest version first.
conformance_refs() {
  local path=e2e-test-images/$1
  [ "$1" != etcd ] || path=etcd
  grep -E "^$CONFORMANCE_REGISTRY/$path:[^ ]+$" "$work/images.txt" | sort -V
}

build_conformance() {
  local v=$1 staging_v="v0.${1#*.}" major=${1%%.*} minor t
  minor=$(echo "$v" | cut -d. -f2)
  mkdir -p "$out/bin" "$out/images"

  # Debian packages first (quick, and a missing version fails early).
  t=$SECONDS
  local agnhost_debs glibc_debs nginx_debs all_debs
  mapfile -t agnhost_debs < <(conformance_closure '' "${CONFORMANCE_AGNHOST_DEBS[@]}")
  mapfile -t glibc_debs < <(conformance_closure '' "${CONFORMANCE_GLIBC_DNS_DEBS[@]}")
  # nginx's init script helpers and stock configuration are not needed: the
  # image has its own nginx.conf.
  mapfile -t nginx_debs < <(conformance_closure 'nginx-common|iproute2' nginx)
  if [ ${#agnhost_debs[@]} = 0 ] || [ ${#glibc_debs[@]} = 0 ] || [ ${#nginx_debs[@]} = 0 ]; then
    die "no Debian package lists (apt-cache depends failed)"
  fi
  mapfile -t all_debs < <(printf '%s\n' "${agnhost_debs[@]}" "${glibc_debs[@]}" "${nginx_debs[@]}" | sort -u)
  conformance_debs "$work/debs" "busybox-static=$BUSYBOX_DEB_VERSION" "bash-static=$BASH_STATIC_DEB_VERSION" "${all_debs[@]}"
  local p
  for p in busybox-static bash-static; do
    rm -rf "$work/x/$p" && mkdir -p "$work/x/$p"
    dpkg-deb -x "$(conformance_deb_file "$p")" "$work/x/$p"
  done
  log "  Debian packages: $(find "$work/debs" -name '*.deb' | wc -l) downloaded in $((SECONDS - t)) s"

  # e2e.test and agnhost from one wrapper of k8s.io/kubernetes (staging
  # modules at their published v0.<minor>.<patch>, as kubernetes.sh).
  local suite=$work/suite
  conformance_wrapper "$suite" conformance k8s.io/kubernetes "v$v" "$staging_v"
  local date ld
  date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$v -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitCommit=module-v$v -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  t=$SECONDS
  (cd "$suite" && go test -c -trimpath -ldflags "$ld" -o "$out/bin/e2e.test" k8s.io/kubernetes/test/e2e)
  log "  e2e.test: $((SECONDS - t)) s"
  local said
  said=$("$out/bin/e2e.test" --version 2>/dev/null) || true  # whole output first: no SIGPIPE under pipefail
  grep -qx "v$v" <<<"$said" || die "e2e.test does not report v$v: $said"
  local kdir agnhost_v
  kdir=$(cd "$suite" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  agnhost_v=$(cat "$kdir/test/images/agnhost/VERSION")
  t=$SECONDS
  (cd "$suite" && go build -trimpath -ldflags "-s -w -X main.Version=$agnhost_v" -o "$out/bin/agnhost" \
    k8s.io/kubernetes/test/images/agnhost)
  log "  agnhost $agnhost_v: $((SECONDS - t)) s"

  # The image names the suite uses, under our registry.
  printf 'promoterE2eRegistry: %s/e2e-test-images\ngcEtcdRegistry: %s\n' \
    "$CONFORMANCE_REGISTRY" "$CONFORMANCE_REGISTRY" >"$out/repo-list.yaml"
  KUBE_TEST_REPO_LIST=$out/repo-list.yaml "$out/bin/e2e.test" --list-images 2>/dev/null >"$work/images.txt" \
    || die "e2e.test --list-images failed"
  local specs
  specs=$("$out/bin/e2e.test" --list-tests 2>/dev/null | grep -cF '[Conformance]') || true
  [ "${specs:-0}" -gt 0 ] || die "e2e.test lists no [Conformance] specs"
  log "  e2e.test: $specs [Conformance] specs"
  local ref_busybox ref_nonroot ref_kitten ref_nautilus ref_glibc ref_sample ref_etcd n
  for n in busybox nonroot kitten nautilus glibc-dns-testing sample-apiserver etcd; do
    [ "$(conformance_refs "$n" | wc -l)" = 1 ] || die "the suite names $(conformance_refs "$n" | wc -l) tags of $n, not one"
  done
  ref_busybox=$(conformance_refs busybox)
  ref_nonroot=$(conformance_refs nonroot)
  ref_kitten=$(conformance_refs kitten)
  ref_nautilus=$(conformance_refs nautilus)
  ref_glibc=$(conformance_refs glibc-dns-testing)
  ref_sample=$(conformance_refs sample-apiserver)
  ref_etcd=$(conformance_refs etcd)
  # agnhost: the tag of the module's VERSION, and any other (older) tag the
  # suite also names. nginx: the lower tag, and the higher one as nginx-new.
  local ref_agnhost=$CONFORMANCE_REGISTRY/e2e-test-images/agnhost:$agnhost_v ref_agnhost_prev
  grep -qx "$ref_agnhost" "$work/images.txt" || die "the suite does not name $ref_agnhost (agnhost's VERSION)"
  ref_agnhost_prev=$(conformance_refs agnhost | grep -vx "$ref_agnhost" | tail -1) || true
  local ref_nginx ref_nginx_new
  ref_nginx=$(conformance_refs nginx | head -1) || true
  ref_nginx_new=$(conformance_refs nginx | sed 1d | tail -1) || true
  [ -n "$ref_nginx" ] || die "the suite names no nginx image"

  # ginkgo: the release e2e.test links.
  local ginkgo_v
  ginkgo_v=$(cd "$suite" && go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
  conformance_wrapper "$work/ginkgo" ginkgo github.com/onsi/ginkgo/v2 "$ginkgo_v"
  t=$SECONDS
  (cd "$work/ginkgo" && go build -trimpath -ldflags "-s -w" -o "$out/bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)
  log "  ginkgo $ginkgo_v: $((SECONDS - t)) s"
  said=$("$out/bin/ginkgo" version) || true
  grep -q "${ginkgo_v#v}" <<<"$said" || die "ginkgo does not report $ginkgo_v: $said"

  # sample-apiserver: the release its image tag names (1.<minor>.<patch> is
  # k8s.io/sample-apiserver v0.<minor>.<patch>).
  local sample_tag=${ref_sample##*:} sample_v
  [[ $sample_tag =~ ^1\.[0-9]+\.[0-9]+$ ]] || die "sample-apiserver tag $sample_tag is not 1.<minor>.<patch>"
  sample_v=v0.${sample_tag#1.}
  conformance_wrapper "$work/sample-apiserver" sample-apiserver k8s.io/sample-apiserver "$sample_v"
  t=$SECONDS
  (cd "$work/sample-apiserver" && go build -trimpath -ldflags "-s -w" -o "$out/bin/sample-apiserver" k8s.io/sample-apiserver)
  log "  sample-apiserver $sample_v: $((SECONDS - t)) s"

  # The images.
  t=$SECONDS
  local r=$work/root list=$work/images.list deb_os
  deb_os="Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
  local bb_ver bash_ver
  bb_ver="busybox-static $BUSYBOX_DEB_VERSION"
  bash_ver="bash-static $BASH_STATIC_DEB_VERSION"
  : >"$list"
  entry() { printf '%s.tar %s %s\n' "$1" "$2" "$3" >>"$list"; }

  conformance_busybox_tree "$r/busybox"
  conformance_image busybox "$ref_busybox" "$r/busybox" --cmd sh --env PATH=/usr/sbin:/usr/bin:/sbin:/bin
  entry busybox "$ref_busybox" "$bb_ver ($deb_os), one link per applet; sh is $bash_ver"
  conformance_image nonroot "$ref_nonroot" "$r/busybox" --cmd sh --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --user 1234
  entry nonroot "$ref_nonroot" "the busybox tree, USER 1234"

  # agnhost: upstream's image adds the user and group some specs look up by
  # name, /uploads, the porter's certificate and the agnhost-2 link.
  conformance_debian_tree "$r/agnhost" 1 "${agnhost_debs[@]}"
  conformance_check_libs "$r/agnhost" usr/bin/bash usr/bin/dash usr/bin/dig usr/bin/nslookup usr/bin/host \
    usr/bin/curl usr/bin/nc.openbsd usr/bin/ip usr/bin/ss usr/bin/ps usr/bin/iperf usr/bin/socat usr/bin/getent
  install -m 0755 "$out/bin/agnhost" "$r/agnhost/agnhost"
  ln -s agnhost "$r/agnhost/agnhost-2"
  install -m 0644 "$kdir/test/images/agnhost/porter/localhost.crt" "$kdir/test/images/agnhost/porter/localhost.key" "$r/agnhost/"
  mkdir -p "$r/agnhost/uploads" "$r/agnhost/home/user-defined-in-image"
  echo "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh" >>"$r/agnhost/etc/passwd"
  printf '%s\n' "user-defined-in-image:x:1000:" "group-defined-in-image:x:50000:user-defined-in-image" >>"$r/agnhost/etc/group"
  local agnhost_flags=(--entrypoint /agnhost --cmd pause --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --expose 80 --expose 8080 --expose 8081 --expose 9376 --expose 5000)
  conformance_image agnhost "$ref_agnhost" "$r/agnhost" "${agnhost_flags[@]}"
  entry agnhost "$ref_agnhost" "agnhost $agnhost_v (test/images/agnhost of k8s.io/kubernetes v$v) on $deb_os tools + busybox"
  if [ -n "$ref_agnhost_prev" ]; then
    # A label makes it another image ID: one ID under two names would be one image.
    conformance_image agnhost-prev "$ref_agnhost_prev" "$r/agnhost" "${agnhost_flags[@]}" --label "org.ezctl.e2e.tag=${ref_agnhost_prev##*:}"
    entry agnhost-prev "$ref_agnhost_prev" "the agnhost $agnhost_v tree under the suite's previous tag (another image ID by its label)"
  fi

  # kitten, nautilus: agnhost's test-webserver serving the picture and the
  # data.json of test/images/<name>/html.
  for n in kitten nautilus; do
    local ref
    if [ $n = kitten ]; then ref=$ref_kitten; else ref=$ref_nautilus; fi
    conformance_busybox_tree "$r/$n"
    install -m 0755 "$out/bin/agnhost" "$r/$n/agnhost"
    install -m 0644 "$kdir/test/images/$n/html/$n.jpg" "$kdir/test/images/$n/html/data.json" "$r/$n/"
    conformance_image "$n" "$ref" "$r/$n" --entrypoint /agnhost --cmd test-webserver --expose 80 \
      --env PATH=/usr/sbin:/usr/bin:/sbin:/bin
    entry "$n" "$ref" "agnhost $agnhost_v test-webserver with test/images/$n/html, busybox tree"
  done

  # nginx: Debian's, serving one page on :80 and logging to the container's
  # output, with busybox for the shell the specs exec.
  local nginx_ver
  nginx_ver=$(dpkg-deb -f "$(conformance_deb_file nginx)" Version)
  conformance_debian_tree "$r/nginx" 1 "${nginx_debs[@]}"
  conformance_check_libs "$r/nginx" usr/sbin/nginx
  mkdir -p "$r/nginx/etc/nginx" "$r/nginx/usr/share/nginx/html" "$r/nginx/var/log/nginx" "$r/nginx/var/lib/nginx"
  mkdir -p "$r/nginx"/var/lib/nginx/{body,fastcgi,proxy,scgi,uwsgi}
  chmod 0700 "$r/nginx"/var/lib/nginx/{body,fastcgi,proxy,scgi,uwsgi}
  cat >"$r/nginx/etc/nginx/nginx.conf" <<'EOF'
# The e2e suite's web server: one static page on port 80, logs to the
# container's output.
user nobody nogroup;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
  access_log /dev/stdout;
  default_type text/html;
  server {
    listen 80 default_server;
    listen [::]:80 default_server;
    root /usr/share/nginx/html;
    index index.html;
  }
}
EOF
  printf '%s\n' '<!DOCTYPE html>' '<html><head><title>Welcome to nginx!</title></head>' \
    '<body><h1>Welcome to nginx!</h1></body></html>' >"$r/nginx/usr/share/nginx/html/index.html"
  local nginx_flags=(--cmd nginx --cmd -g --cmd "daemon off;" --expose 80 --env PATH=/usr/sbin:/usr/bin:/sbin:/bin)
  conformance_image nginx "$ref_nginx" "$r/nginx" "${nginx_flags[@]}"
  entry nginx "$ref_nginx" "nginx ${nginx_ver%%-*} ($deb_os) serving one page on :80, busybox"
  if [ -n "$ref_nginx_new" ]; then
    conformance_image nginx-new "$ref_nginx_new" "$r/nginx" "${nginx_flags[@]}" --label "org.ezctl.e2e.tag=${ref_nginx_new##*:}"
    entry nginx-new "$ref_nginx_new" "the nginx tree under the suite's newer tag (another image ID by its label)"
  fi

  conformance_debian_tree "$r/glibc-dns-testing" 0 "${glibc_debs[@]}"
  conformance_check_libs "$r/glibc-dns-testing" usr/bin/bash usr/bin/dash usr/bin/dig usr/bin/nslookup usr/bin/host usr/bin/getent
  conformance_image glibc-dns-testing "$ref_glibc" "$r/glibc-dns-testing" --cmd sh --env PATH=/usr/sbin:/usr/bin:/sbin:/bin
  entry glibc-dns-testing "$ref_glibc" "$deb_os bind9-dnsutils, libc-bin, dash"

  image_base "$r/sample-apiserver"
  install -m 0755 "$out/bin/sample-apiserver" "$r/sample-apiserver/sample-apiserver"
  conformance_image sample-apiserver "$ref_sample" "$r/sample-apiserver" --entrypoint /sample-apiserver
  entry sample-apiserver "$ref_sample" "k8s.io/sample-apiserver $sample_v"

  # etcd: the lab's build under the suite's tag (the aggregator spec runs
  # /usr/local/bin/etcd beside the sample-apiserver).
  image_base "$r/etcd"
  mkdir -p "$r/etcd/usr/local/bin" "$r/etcd/var/lib/etcd"
  install -m 0755 "$CONFORMANCE_ETCD_DIR/etcd" "$CONFORMANCE_ETCD_DIR/etcdctl" "$r/etcd/usr/local/bin/"
  conformance_image etcd "$ref_etcd" "$r/etcd" --env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --workdir /var/lib/etcd
  entry etcd "$ref_etcd" "etcd $CONFORMANCE_ETCD_VERSION (the lab's etcd build) under the suite's tag"
  unset -f entry
  cp "$list" "$out/images.list"
  log "  images: $(wc -l <"$list") in $((SECONDS - t)) s"

  {
    echo "conformance suite of Kubernetes v$v, built by scripts/build/conformance.sh"
    echo "e2e.test: go test -c k8s.io/kubernetes/test/e2e, module k8s.io/kubernetes@v$v, staging modules at $staging_v ($specs [Conformance] specs)"
    echo "ginkgo: github.com/onsi/ginkgo/v2/ginkgo@$ginkgo_v (the version e2e.test links)"
    echo "agnhost: k8s.io/kubernetes/test/images/agnhost@v$v (VERSION $agnhost_v)"
    echo "sample-apiserver: k8s.io/sample-apiserver@$sample_v (the release its image tag $sample_tag names)"
    echo "built with $(go env GOVERSION), CGO_ENABLED=$CGO_ENABLED"
    echo "images (KUBE_TEST_REPO_LIST: repo-list.yaml beside this file):"
    sed 's/^/  /' "$list"
    echo "Debian packages ($deb_os, from the archive apt uses), per image tree:"
    echo "  busybox (nonroot, kitten, nautilus):"
    conformance_deb_versions busybox-static bash-static
    echo "  agnhost (agnhost-prev):"
    conformance_deb_versions busybox-static "${agnhost_debs[@]}"
    echo "  nginx (nginx-new):"
    conformance_deb_versions busybox-static "${nginx_debs[@]}"
    echo "  glibc-dns-testing:"
    conformance_deb_versions "${glibc_debs[@]}"
  } >"$out/SOURCE"
}

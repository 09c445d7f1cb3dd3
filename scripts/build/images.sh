# shellcheck shell=bash
# shellcheck disable=SC2154,SC2164 # $out and $work come from build-components.sh; cd runs under set -e
# Recipes for scripts/build-components.sh (sourced): container images, as
# docker-archive tars written by `ezlab image build` ($EZLAB) into
# $out/image.tar. build-components.sh sets IMAGE_REF (name:tag), IMAGE_SRC
# (the built component they take their binary from) and counts both, and the
# ezlab binary, in the build's inputs. VERSION is the image's tag.
#
# Every image gets a minimal /etc/passwd and /etc/group so that numeric users
# have names (`id`, `whoami`) and /tmp exists, sticky and world-writable.

# image_base DIR USER_LINES...: the common skeleton.
image_base() {
  local root=$1
  shift
  umask 022
  rm -rf "$root"
  mkdir -p "$root/etc" "$root/tmp"
  chmod 0755 "$root" "$root/etc"
  chmod 1777 "$root/tmp"
  {
    echo "root:x:0:0:root:/root:/bin/sh"
    printf '%s\n' "$@"
    echo "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin"
  } >"$root/etc/passwd"
  {
    echo "root:x:0:"
    printf '%s\n' "$@" | awk -F: '{ print $1 ":x:" $4 ":" }'
    echo "nogroup:x:65534:"
  } >"$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
}

# pause: the sandbox every pod starts first. Upstream: ENTRYPOINT ["/pause"],
# USER 65535:65535 (build/pause/Dockerfile in k8s.io/kubernetes).
build_image_pause() {
  local root=$work/root
  image_base "$root"
  install -m 0755 "$IMAGE_SRC/pause" "$root/pause"
  "$EZLAB" image build --root "$root" --tag "$IMAGE_REF" -o "$out/image.tar" \
    --entrypoint /pause --user 65535:65535
}

# coredns: upstream runs it as 65532:65532 (distroless "nonroot") with the
# file capability cap_net_bind_service on /coredns, so a non-root process can
# bind :53 (the kubelet's runtime keeps NET_BIND_SERVICE in the bounding set
# and, with no_new_privs, in the permitted set it started with). The
# capability travels as the layer entry's security.capability xattr.
build_image_coredns() {
  local root=$work/root
  image_base "$root" "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"
  install -m 0755 "$IMAGE_SRC/coredns" "$root/coredns"
  "$EZLAB" image build --root "$root" --tag "$IMAGE_REF" -o "$out/image.tar" \
    --entrypoint /coredns --user 65532:65532 --workdir / \
    --expose 53/tcp --expose 53/udp --file-cap /coredns=cap_net_bind_service
}

# busybox: Debian's busybox-static at the pinned version ($BUSYBOX_DEB_VERSION,
# from the archive apt uses), one symlink per applet at the path busybox
# itself lists, for test pods (sh, sleep, wget, nslookup, nc, ...).
# Seen under containerd 2.4 + runc 1.5: nslookup (busybox's own resolver) and
# wget by name (static glibc reads /etc/hosts and /etc/resolv.conf) work;
# Debian 12's busybox wget has no -T: `wget -T N` segfaults, use `timeout N wget`.
build_image_busybox() {
  local root=$work/root deb=$work/deb
  rm -rf "$deb" && mkdir -p "$deb"
  # A fresh machine may have no package lists yet: update once and retry.
  (cd "$deb" && apt-get download -q "busybox-static=$BUSYBOX_DEB_VERSION" >/dev/null 2>&1) \
    || { apt-get update -q >/dev/null && (cd "$deb" && apt-get download -q "busybox-static=$BUSYBOX_DEB_VERSION" >/dev/null); } \
    || die "apt-get download busybox-static=$BUSYBOX_DEB_VERSION failed (apt-get update? is that version still in the archive?)"
  dpkg-deb -x "$deb"/busybox-static_*.deb "$deb/x"
  image_base "$root"
  mkdir -p "$root/bin" "$root/root" "$root/home"
  chmod 0700 "$root/root"
  install -m 0755 "$deb/x/bin/busybox" "$root/bin/busybox"
  local applet n=0
  for applet in $("$root/bin/busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sfn /bin/busybox "$root/$applet"
    n=$((n + 1))
  done
  for applet in sh sleep wget nslookup nc; do
    [ -L "$root/bin/$applet" ] || [ -L "$root/usr/bin/$applet" ] || [ -L "$root/sbin/$applet" ] \
      || die "busybox $BUSYBOX_DEB_VERSION has no $applet applet"
  done
  log "  busybox: $n applets"
  "$EZLAB" image build --root "$root" --tag "$IMAGE_REF" -o "$out/image.tar" \
    --cmd sh --env PATH=/usr/sbin:/usr/bin:/sbin:/bin
}

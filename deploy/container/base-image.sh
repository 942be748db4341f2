#!/usr/bin/env bash
# Makes a debian:bookworm-slim-like base image from Debian's packages with debootstrap, for
# machines that reach Debian's package mirror but no image registry (CI). Usage (as root):
#   deploy/container/base-image.sh [TAG]     (default localhost/debian:bookworm-slim)
# The mirror and apt sources are the host's own (/etc/apt/sources.list.d/debian.sources).
set -euo pipefail
tag="${1:-localhost/debian:bookworm-slim}"
sources=/etc/apt/sources.list.d/debian.sources
mirror="$(awk '/^URIs:/ {print $2; exit}' "$sources")"
rootfs="$(mktemp -d /tmp/scimbridge-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
cp "$sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
rm -f "$rootfs/etc/apt/sources.list"
# What the published slim image leaves out: documentation, manual pages and translations
# (dpkg skips them on every later install too), and the package caches.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim-excludes" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CONF
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" --numeric-owner -c . | podman import --quiet - "$tag" >/dev/null
echo "base image $tag made from $mirror"

#!/usr/bin/env bash
# Print the name of the base image the kit's images build FROM, making it when it is missing.
#
# Where a registry serves python:3.11-slim (BASE_IMAGE, pulled once), that is the base. Where
# none is reachable, the base is made here from Debian's own packages: debootstrap of
# bookworm (minbase) with Debian's Python 3.11 and venv, trimmed of documentation, locales and
# apt's lists, imported with `docker import`. It is cached as a tarball under
# $PIPELINE_IMAGES_CACHE, keyed by this script, so it is made once per machine (about a
# minute) and re-imported after a Docker reset in seconds.
#
# Package registries behind a TLS-inspecting proxy are trusted on the machine through its
# system CA bundle; the made base carries that bundle, so pip inside the build stages reaches
# them. The images install a venv (python3 -m venv), so the base needs no pip of its own.
#
# Progress goes to stderr; the image name is the last line on stdout.
set -euo pipefail
registry_base=${BASE_IMAGE:-python:3.11-slim}
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv,ca-certificates
cache=${PIPELINE_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-pipeline-images}
log() { printf '[base %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if docker image inspect "$registry_base" >/dev/null 2>&1; then
  log "using $registry_base"; echo "$registry_base"; exit 0
fi
if [[ -z ${LOCAL_BASE_ONLY:-} ]] && timeout 60 docker pull --quiet "$registry_base" >/dev/null 2>&1; then
  log "pulled $registry_base"; echo "$registry_base"; exit 0
fi

key=$({ cat "$0"; echo "$suite $mirror $packages"; sha256sum /etc/ssl/certs/ca-certificates.crt; } \
  | sha256sum | cut -c1-12)
name=inference-pipelines/base:$suite-$key
if docker image inspect "$name" >/dev/null 2>&1; then
  log "using $name"; echo "$name"; exit 0
fi
tarball=$cache/base-$suite-$key.tar.gz
if [[ ! -f $tarball ]]; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
  log "no registry serves $registry_base: making $name from Debian $suite packages (about a minute)"
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2
  # What a slim image leaves out: apt's state, caches, docs, man pages, locales.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/{doc,man,info,locale,lintian} "$rootfs"/tmp/*
  find "$rootfs"/usr/lib/python3* -name '__pycache__' -prune -exec rm -rf {} + 2>/dev/null || true
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  ln -sf python3 "$rootfs/usr/bin/python"
  tar -C "$rootfs" --numeric-owner -czf "$tarball.part" . && mv "$tarball.part" "$tarball"
fi
docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  "$tarball" "$name" >/dev/null
log "imported $name ($(docker image inspect --format '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$name"

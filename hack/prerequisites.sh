#!/usr/bin/env bash
# Install (when missing) and start what the local cluster's real nodes and the image builds
# need of the machine: Debian's docker.io (dockerd builds the images), containerd and runc
# (each real node runs its own containerd), the CNI plugins, iptables and conntrack (pods'
# network and kube-proxy), debootstrap (a base image where no registry serves one).
# Needs root on Debian; idempotent, and quick when everything is there.
set -euo pipefail
log() { printf '[prerequisites %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
packages=(docker.io containerd runc containernetworking-plugins iptables conntrack iproute2 debootstrap)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start: see /var/log/dockerd.log"; exit 1; }
fi
log "docker $(docker version --format '{{.Server.Version}}'), containerd $(containerd --version | awk '{print $3}')"

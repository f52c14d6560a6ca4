#!/usr/bin/env bash
# Installs what building and testing virtbgp needs on a Debian 12 host:
# Debian packages (only the missing ones; apt-get update at most once) and the
# pinned Go modules. Idempotent; run as root (or with sudo) on a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# build: cgo against libvirt; tests: a real libvirtd (test driver), network
# namespaces, systemd-analyze (unit check; does not replace the init system);
# bench: GNU time (a child's peak RSS).
pkgs=(gcc pkg-config libvirt-dev libvirt-daemon libvirt-clients iproute2 systemd time)
[ $# -gt 0 ] && pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "deps: Go is not installed (need Go >= 1.26 on PATH)" >&2; exit 1; }
go mod download

#!/usr/bin/env bash
# Installs what building and testing virtbgp needs on a Debian 12 host:
# Debian packages (only the missing ones; apt-get update at most once) and the
# pinned Go modules. Idempotent; run as root (or with sudo) on a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# build: cgo against libvirt; tests: a real libvirtd (test driver), network
# namespaces, systemd-analyze (unit check; does not replace the init system);
# bench: GNU time (a child's peak RSS); make deb and its test: dpkg-dev
# (dpkg-shlibdeps), lintian, groff (the man pages' check); curl (the API's
# tests and benchmark drive it as operators do, curl --unix-socket).
pkgs=(gcc pkg-config libvirt-dev libvirt-daemon libvirt-clients iproute2 systemd time dpkg-dev lintian groff curl)
[ $# -gt 0 ] && pkgs+=("$@")

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
updated=""
apt_update() { [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }; }

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool, for the test of the alert rules (examples/prometheus): the one
# binary, taken out of Debian's prometheus package into /usr/local/bin.
# Installing that package would also add a prometheus user and enable and
# start a Prometheus server (port 9090, a database in /var/lib/prometheus).
if ! command -v promtool >/dev/null && [ ! -x /usr/local/bin/promtool ]; then
  echo "deps: installing /usr/local/bin/promtool (from Debian's prometheus package, without the server)"
  apt_update
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  [ "$(id -u)" -ne 0 ] || chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt
  (cd "$tmp" && apt-get download -qq prometheus)
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$tmp/promtool"
  $SUDO install -m 0755 "$tmp/promtool" /usr/local/bin/promtool
  /usr/local/bin/promtool --version >/dev/null
fi

command -v go >/dev/null || { echo "deps: Go is not installed (need Go >= 1.26 on PATH)" >&2; exit 1; }
go mod download

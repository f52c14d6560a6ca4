#!/usr/bin/env bash
# Builds the Debian package of virtbgp from this tree with dpkg-deb: `make
# deb`, or scripts/mkdeb.sh [OUTDIR] (default bin/). Prints the .deb's path.
# The files and where they go are the Makefile's `install` target; the
# maintainer scripts, conffiles, control and copyright are in packaging/deb.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-bin}")
go=${GO:-go}

version=$(sed -n 's/^const releaseVersion = "\(.*\)"$/\1/p' cmd/virtbgp/version.go)
[ -n "$version" ] || { echo "mkdeb: no releaseVersion in cmd/virtbgp/version.go" >&2; exit 1; }
debversion="$version-1"
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"

# The binary: position-independent, without the symbol table (Go's stack
# traces keep working), with the build's commit; the rest as `make install`.
make --no-print-directory install DESTDIR="$root" BIN="$work/virtbgp" \
	BUILDFLAGS="-trimpath -buildmode=pie" EXTRA_LDFLAGS="-s -w" >&2

doc="$root/usr/share/doc/virtbgp"
install -D -m 0644 packaging/deb/copyright "$doc/copyright"
{
	printf 'virtbgp (%s) unstable; urgency=medium\n\n' "$debversion"
	printf '  * Package of virtbgp %s, built from the upstream tree (make deb).\n' "$version"
	printf '    Upstream changes: /usr/share/doc/virtbgp/changelog.gz\n\n'
	printf ' -- virtbgp maintainers <virtbgp@users.noreply.github.com>  %s\n' \
		"$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$doc/changelog.Debian.gz"
install -D -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/virtbgp"

# Run-time libraries, as dpkg-shlibdeps finds them (libvirt0, libc6); it
# wants a debian/control beside it.
mkdir -p "$work/src/debian"
printf 'Source: virtbgp\n\nPackage: virtbgp\nArchitecture: any\n' >"$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O "$root/usr/sbin/virtbgp" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
	packaging/deb/control.in >"$root/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/virtbgp_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
